"""What the browser tests share: a request router that keeps a page offline and says what it stopped."""


def lab_origins(base: str) -> tuple[str, ...]:
    """What a JupyterLab page may load: its own server, the kernel's websocket, inline data."""
    return (base, "ws://127.0.0.1", "data:", "blob:", "about:")


#: What an exported offline page (opened from ``file://``) may load.
FILE_ORIGINS = ("file:", "data:", "about:", "blob:")


def offline_router(allowed: tuple[str, ...], blocked: list):
    """A playwright ``page.route("**/*", ...)`` handler: a request whose URL starts with one of
    ``allowed`` goes through; any other is aborted and its URL appended to ``blocked`` (the test
    then fails naming it)."""
    def route(r):
        url = r.request.url
        if url.startswith(allowed):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()
    return route
