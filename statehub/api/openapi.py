"""The OpenAPI document's configuration, and the two places it needs help from the hub (ADR-031).

The document is Litestar's, generated from the controllers: parameters with
their bounds (``statehub.api.deps``), answers with their types, and every error
status with :class:`statehub.api.errorshape.ErrorBody` (``error_responses``).
Two things it cannot say by itself:

- **Tokens.** On a hub that requires tokens, every operation but the open
  ``/state/health`` takes ``Authorization: Bearer <token>`` (ADR-016): the
  document declares a ``bearer`` security scheme and names it on those
  operations, so a client (and schemathesis' ``ignored_auth`` check) knows an
  answer without a token is 401. An open hub declares none.
- **Closed bodies.** A body Struct declared ``forbid_unknown_fields`` answers 400
  to a field it does not take; Litestar's schema of a Struct leaves
  ``additionalProperties`` out (any field allowed), so :class:`ClosedStructSchemas`
  says ``additionalProperties: false`` for those (a client, and schemathesis,
  then know an unknown field is refused).
- **Unknown pages under /schema.** Litestar serves ``/schema/{path}`` it has no
  page for with an HTML 404 page of its own; the hub answers the one JSON error
  shape instead (:func:`is_schema_404_page`, used by ``before_handler``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.routes import HTTPRoute

from statehub import __version__
from statehub.auth.guard import OPEN, OPEN_PATHS, RIGHT_OPT

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.handlers import BaseRouteHandler
    from litestar.openapi.plugins import OpenAPIRenderPlugin
    from litestar.openapi.spec import Schema
    from litestar.typing import FieldDefinition

__all__ = [
    "BEARER",
    "SCHEMA_PATH",
    "ClosedStructSchemas",
    "declare_security",
    "is_schema_404_page",
    "openapi_config",
    "schema_404_sentence",
]

SCHEMA_PATH = "/schema"
BEARER = "bearer"
"""The security scheme's name in the document: ``Authorization: Bearer <biscuit token>``."""

_LITESTAR_404_PAGE = "handle_schema_path_not_found"
"""The function Litestar (2.x, ``litestar._openapi.plugin``) serves ``/schema/{path}`` with when no
render plugin has that path; tests/statehub/api/test_openapi_rules.py fails if it is renamed."""


def openapi_config(*, tokens: bool, render_plugins: list[OpenAPIRenderPlugin]) -> OpenAPIConfig:
    """The app's OpenAPI configuration; ``tokens``: the hub requires them (declare the bearer scheme).

    :func:`declare_security` then names the scheme on the operations that need it.
    """
    components = Components(
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="biscuit",
                description="A token minted with 'statehub token mint' (ADR-016).",
            )
        }
        if tokens
        else None
    )
    return OpenAPIConfig(
        title="State Hub",
        version=__version__,
        path=SCHEMA_PATH,
        render_plugins=render_plugins,
        components=components,
    )


def declare_security(app: Litestar) -> None:
    """On a hub with tokens, name the bearer scheme on every documented operation but the open ones
    (``/state/health``; sign-in and sign-out, ``POST`` and ``DELETE /auth/session``, which take none).

    Call once the app is built and before the document is first served: Litestar
    reads a handler's ``security`` when it builds the document, lazily. Security is
    additive over Litestar's layers, so it cannot be set on the app and taken off
    ``/state/health``; it is set on each handler instead.
    """
    schemes = app.openapi_config.components if app.openapi_config is not None else None
    if not isinstance(schemes, Components) or not schemes.security_schemes:
        return
    bearer: list[SecurityRequirement] = [{BEARER: []}]
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path in OPEN_PATHS:
            continue
        for handler, _model in route.route_handler_map.values():
            if handler.include_in_schema and handler.opt.get(RIGHT_OPT) != OPEN[RIGHT_OPT]:
                handler.security = bearer


def is_schema_404_page(handler: BaseRouteHandler) -> bool:
    """Whether ``handler`` is Litestar's HTML 404 page for an unknown ``/schema/{path}``."""
    fn = getattr(handler, "fn", None)
    return getattr(fn, "__name__", None) == _LITESTAR_404_PAGE


def schema_404_sentence(path: str) -> str:
    """The error sentence for an unknown page under ``/schema``."""
    return (
        f"no page {path}; {SCHEMA_PATH} is the API's page, {SCHEMA_PATH}/openapi.json and "
        f"{SCHEMA_PATH}/openapi.yaml its document"
    )


class ClosedStructSchemas(StructSchemaPlugin):
    """The schema of a Struct declared ``forbid_unknown_fields``: Litestar's, with
    ``additionalProperties: false`` (give it in ``Litestar(plugins=...)``: the app's plugins are
    asked before Litestar's own)."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if not super().is_plugin_supported_field(field_definition):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
