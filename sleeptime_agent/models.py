"""Model resolution: ``"local"``, ``"provider:model"``, ``"scripted:..."``, a model, or an env var.

Both agents take a model spec. ``None`` falls back to an environment variable
(:data:`PRIMARY_MODEL_ENV` for the primary agent, :data:`SLEEPTIME_MODEL_ENV` for the sleep-time
agent) and then to ``"local"``, the bundled offline model. Whatever goes wrong while building a
model is a developer's configuration problem and surfaces as one line of
:class:`~sleeptime_agent.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import Literal, cast

from langchain_core.language_models import BaseChatModel

from sleeptime_agent.config import PRIMARY_MODEL_ENV, SLEEPTIME_MODEL_ENV, model_spec
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.testing import SCRIPTED_PREFIX, scripted_model

__all__ = [
    "LOCAL_MODEL",
    "PRIMARY_MODEL_ENV",
    "SLEEPTIME_MODEL_ENV",
    "for_role",
    "resolve_model",
    "with_temperature",
]

LOCAL_MODEL = "local"

_SPEC_HINT = (
    "use 'local', 'provider:model' (e.g. 'openai:gpt-4o-mini') or 'scripted:recall' / "
    "'scripted:memorize' (tests)"
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_model(
    spec: str | BaseChatModel | None, *, env_var: str = PRIMARY_MODEL_ENV
) -> BaseChatModel:
    """Turn a model spec into a chat model.

    Args:
        spec: A chat model (returned as is), ``"local"``, ``"provider:model"`` (anything
            ``langchain.chat_models.init_chat_model`` accepts), ``"scripted:<behaviour>"``
            (a scripted test model, see :func:`~sleeptime_agent.testing.scripted_model`), or
            ``None`` to read ``env_var``.
        env_var: Environment variable consulted when ``spec`` is ``None``; unset or empty means
            ``"local"``.

    Raises:
        ConfigurationError: Unknown provider, missing provider package or API key, or the
            ``local`` extra is not installed.
    """
    if isinstance(spec, BaseChatModel):
        return spec
    if spec is None:
        spec = model_spec(env_var) or LOCAL_MODEL
    spec = spec.strip()
    if spec == LOCAL_MODEL:
        from sleeptime_agent.local import LocalChatModel, require_local_extra

        require_local_extra()  # fail now, not at the first call deep inside a graph
        return LocalChatModel()
    if not spec:
        raise ConfigurationError(f"empty model spec: {_SPEC_HINT}")
    if spec.startswith(SCRIPTED_PREFIX):
        try:
            return scripted_model(spec)
        except ValueError as exc:
            raise ConfigurationError(f"bad scripted model spec {spec!r}: {exc}") from exc

    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(spec)
    except ImportError as exc:
        raise ConfigurationError(
            f"model {spec!r} needs its LangChain provider package: {_one_line(exc)}"
        ) from exc
    except ValueError as exc:
        # init_chat_model's words for "no such provider"; pydantic's ValidationError (a bad
        # or missing setting) is a ValueError too and falls through to the generic line.
        if "model provider" in str(exc) or "model_provider" in str(exc):
            raise ConfigurationError(f"unknown model provider in {spec!r}: {_SPEC_HINT}") from exc
        raise ConfigurationError(f"cannot create model {spec!r}: {_one_line(exc)}") from exc
    except Exception as exc:
        # Building a chat model does no I/O, so any failure is configuration: typically a
        # provider client refusing to start without its API key (openai.OpenAIError...).
        raise ConfigurationError(f"cannot create model {spec!r}: {_one_line(exc)}") from exc


def for_role(model: BaseChatModel, role: Literal["primary", "sleeptime"]) -> BaseChatModel:
    """``model`` set up for one agent when one model serves both.

    The local model gets a llama.cpp slot per role, so that neither agent evicts the other's
    prompt (:meth:`~sleeptime_agent.local.chat_model.LocalChatModel.for_role`); other models
    are returned as they are.
    """
    pin = getattr(model, "for_role", None)
    return cast(BaseChatModel, pin(role)) if callable(pin) else model


def with_temperature(model: BaseChatModel, temperature: float) -> BaseChatModel:
    """A copy of ``model`` sampling at ``temperature``, if the model has that setting.

    Args:
        model: Any chat model.
        temperature: The sampling temperature.

    Returns:
        The copy, or ``model`` itself when it has no ``temperature`` field (scripted fakes).
    """
    if "temperature" in type(model).model_fields:
        return model.model_copy(update={"temperature": temperature})
    return model
