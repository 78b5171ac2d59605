"""An HTTPS upstream for the TLS tests, in the test process: HTTP/1.1 with
keep-alive over Python's ssl, recording per connection the SNI name asked
for, whether the session was resumed and the client certificate, and per
request its path and headers; a POST is answered with its body's SHA-256."""

import hashlib
import http.server
import socketserver
import ssl
import threading

HOST = "127.0.0.1"


class TlsUpstream:
    def __init__(self, cert, key, host=HOST, port=0, client_ca=None):
        self.handshakes = []          # dicts: sni, reused, client_cn
        self.requests = []            # dicts: path, headers
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        seen = {}

        def sni_cb(sock, name, _ctx):
            seen[id(sock)] = name
        ctx.sni_callback = sni_cb
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError):
                    self.handshake_failed = True
                    return
                self.handshake_failed = False
                peer = self.request.getpeercert()
                cn = None
                if peer:
                    for rdn in peer.get("subject", ()):
                        for k, v in rdn:
                            if k == "commonName":
                                cn = v
                with owner.lock:
                    owner.handshakes.append({"sni": seen.pop(id(self.request), None),
                                             "reused": self.request.session_reused,
                                             "client_cn": cn})
                super().setup()

            def handle(self):
                if not self.handshake_failed:
                    super().handle()

            def finish(self):
                if not self.handshake_failed:
                    super().finish()

            def do_GET(self):
                with owner.lock:
                    owner.requests.append({"path": self.path, "headers": dict(self.headers)})
                body = b"hello over tls\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Upstream", "tls")
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                sha = hashlib.sha256()
                while n > 0:
                    data = self.rfile.read(min(n, 65536))
                    if not data:
                        return
                    sha.update(data)
                    n -= len(data)
                body = sha.hexdigest().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Upstream", "tls")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, addr = self.socket.accept()
                return ctx.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False), addr

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
