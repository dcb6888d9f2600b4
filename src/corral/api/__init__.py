"""The daemon's HTTP API as a contract: what each request carries and each answer holds.

:mod:`corral.api.models` holds the request and response models (pydantic), shared by
the daemon (:mod:`corral.daemon.api`, which validates requests and answers with them)
and the Python SDK (:class:`corral.client.Client`, which builds requests from them and
returns them). :mod:`corral.api.problems` turns pydantic's validation errors into
corral's one-line messages, on both sides.

This package itself imports nothing: the CLI speaks the same API with plain dicts
(:class:`corral.client.Connection`) and must not pay for pydantic on every call.
"""
