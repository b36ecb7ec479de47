"""Issue 22, item 11: `/docs` and `/redoc` loaded unpinned scripts from a CDN into the API's origin.

Code from another origin could read an operator token pasted into the page,
and the page was blank offline. Swagger UI is now vendored in the package
(pinned by hash) and sup under the dashboard's CSP; Redoc is not sup.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from supervisor.api.app import _DOCS_SHA256


def test_the_docs_page_loads_only_from_its_own_origin_under_the_csp(http):
    page = http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/") or s == "data:," for s in sources), sources
    assert "<script>" not in page.text  # nothing inline: the CSP would refuse it anyway
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js"):
        r = http.get(f"/docs/{asset}")
        assert r.status_code == 200 and r.headers["content-security-policy"] == csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert http.head("/docs").status_code == 200


def test_redoc_and_unknown_files_are_not_served(http):
    assert http.get("/redoc").status_code == 404
    assert http.get("/docs/../app.py").status_code == 404
    assert http.get("/docs/VENDORED.md").status_code == 404
    assert http.get("/docs/LICENSE").status_code == 404


def test_the_vendored_files_are_the_pinned_release():
    folder = resources.files("supervisor.api").joinpath("docs_ui")
    for name, digest in _DOCS_SHA256.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in folder.joinpath("LICENSE").read_text()
