"""The OpenAPI document names every answer an operation can give, not only its own.

FastAPI documents the bearer scheme but not its answers: every operation
that needs a credential can answer 401 (missing or unknown credential) and
403 (a role without the permission). And an operation with a request body
answers 400 when the body is not JSON at all (before it can be validated,
which is 422). These are added, with the error body, where they apply.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_AUTH_ANSWERS = {
    "401": "No credential, or one that is not valid.",
    "403": "The caller's role lacks the permission.",
}
_BODY_ANSWERS = {"400": "The request body is not JSON."}


def document_answers(app: FastAPI) -> None:
    """Make `app.openapi()` document 401/403 on secured operations, 400 on those with a body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        problem = {"$ref": "#/components/schemas/Problem"}
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "Problem",
            {
                "title": "Problem",
                "type": "object",
                "properties": {"detail": {"title": "Detail", "type": "string"}},
                "required": ["detail"],
            },
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                answers: dict[str, str] = {}
                if operation.get("security"):
                    answers |= _AUTH_ANSWERS
                if "requestBody" in operation:
                    answers |= _BODY_ANSWERS
                responses = operation.setdefault("responses", {})
                for code, description in answers.items():
                    responses.setdefault(
                        code,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": problem}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
