"""How bytes come from servers: libcurl, through pycurl, driven from one thread.

libcurl does what is not sa1b's own: connections and keep-alive, TLS (always
verified), HTTP/1.1 framing (chunked bodies, 1xx answers), redirects and proxies.
sa1b keeps the decisions, each a pure module here or above:

- :mod:`~sa1b.net.options` the frozen settings, built once at the edge;
- :mod:`~sa1b.net.proxy` which proxy carries a URL;
- :mod:`~sa1b.net.heads` response heads, from the lines libcurl hands over;
- :mod:`~sa1b.net.answers` what an answer to a range request means (which bytes it
  carries, whether the object changed, expired or must be retried), before a byte of
  it is written;
- :mod:`~sa1b.net.failures` libcurl's error codes as :mod:`sa1b.errors`;
- :mod:`~sa1b.net.watchdog` the head deadline and the speed floor;
- :mod:`~sa1b.net.governor` how many connections to keep open.

:mod:`~sa1b.net.curl` is the one module that imports pycurl: an event loop
(``epoll`` and ``curl_multi_socket_action``) that asks its source for requests and
hands each response to the request's receiver. :mod:`~sa1b.net.transport` is what the
engine holds: the loops (one by default) and what they share.
"""
