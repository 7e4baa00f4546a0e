"""The Jupyter server extension: the model layer's REST API under Jupyter's own auth.

Jupyter finds it through ``localmind_jupyter._jupyter_server_extension_points()``;
nothing here is imported by ``import localmind_jupyter`` or by the IPython magic,
and the backends are only built when the first request needs them.
"""

from __future__ import annotations

#: The resource name handed to Jupyter's authorizer (``@authorized``) for every endpoint.
AUTH_RESOURCE = "localmind"

#: Every endpoint lives under ``{base_url}localmind/api/``.
URL_PREFIX = "/localmind/api"
