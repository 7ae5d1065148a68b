"""Static checks of the shipped UI files: safe DOM APIs only, relative URLs only, and every
module preloaded. Cheap guards for mistakes a browser test might not walk into."""

from __future__ import annotations

import re

from traceyard.ui import STATIC_DIR

JS_FILES = sorted(STATIC_DIR.rglob("*.js"))
#: APIs that parse strings as HTML or code: data must never reach them, so none is used.
UNSAFE = re.compile(
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
    r"createContextualFragment|srcdoc|setHTMLUnsafe|DOMParser"
)


def test_the_static_dir_has_the_app() -> None:
    assert (STATIC_DIR / "index.html").is_file()
    assert (STATIC_DIR / "app.css").is_file()
    assert len(JS_FILES) >= 10


def test_no_html_parsing_api_is_used() -> None:
    offenders = [
        f"{path.relative_to(STATIC_DIR)}:{number}: {line.strip()}"
        for path in JS_FILES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE.search(line) and "BLOCKED_ATTRS =" not in line  # the guard naming them
    ]
    assert not offenders, offenders


def test_every_url_is_relative() -> None:
    """Absolute paths break under a reverse-proxy prefix; remote URLs break offline."""
    index = (STATIC_DIR / "index.html").read_text()
    for url in re.findall(r'(?:href|src)="([^"]+)"', index):
        assert url.startswith(("./", "#/")), url
    for path in JS_FILES:
        text = path.read_text()
        for spec in re.findall(r'^import .* from "([^"]+)";', text, re.MULTILINE):
            assert spec.startswith("./") or spec.startswith("../"), (path.name, spec)
        for url in re.findall(r'new URL\(\s*[`"]([^`"]*)', text):
            assert url.startswith("./"), (path.name, url)
        assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "")
        assert "https://" not in text, path.name
    css = (STATIC_DIR / "app.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_every_module_is_preloaded() -> None:
    """index.html preloads each module so the browser fetches them at once."""
    index = (STATIC_DIR / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="\./([^"]+)"', index))
    shipped = {path.relative_to(STATIC_DIR).as_posix() for path in JS_FILES}
    assert preloaded == shipped
