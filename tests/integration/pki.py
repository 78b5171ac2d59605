"""A throwaway PKI for the TLS tests, made with the openssl command line in
a test's own directory: certificate authorities and leaf certificates with
chosen names, dates and issuers. Nothing here is used anywhere real."""

import subprocess
from pathlib import Path


def _run(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), p.stderr))


class Pki:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name):
        return str(self.dir / name)

    def ca(self, name):
        """A self-signed CA: NAME.pem, NAME.key."""
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "30",
             "-subj", "/CN=%s" % name, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return self.path(name + ".pem")

    def leaf(self, name, ca, dns=(), ips=(), expired=False, client=False):
        """NAME.pem / NAME.key signed by CA, with the given subjectAltNames.
        EXPIRED: valid for one day in 2020 (signed through `openssl ca`,
        the one tool of OpenSSL 3.0 that takes explicit dates)."""
        sans = ["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips]
        cn = (list(dns) + list(ips) + [name])[0]
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % cn,
             cwd=self.dir)
        ext = self.dir / (name + ".ext")
        lines = ["basicConstraints=CA:FALSE",
                 "extendedKeyUsage=%s" % ("clientAuth" if client else "serverAuth")]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n")
        if not expired:
            _run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-days", "30", "-extfile", ext.name, "-out", name + ".pem",
                 cwd=self.dir)
        else:
            db = self.dir / (ca + ".db")
            db.write_text("")
            (self.dir / (ca + ".serial")).write_text("1000\n")
            conf = self.dir / (ca + ".cnf")
            conf.write_text(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = %s\nserial = %s\nnew_certs_dir = %s\n"
                "default_md = sha256\npolicy = p\ncopy_extensions = none\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n" % (db, self.dir / (ca + ".serial"), self.dir))
            _run("ca", "-batch", "-config", conf.name, "-cert", ca + ".pem", "-keyfile", ca + ".key",
                 "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
                 "-extfile", ext.name, "-in", name + ".csr", "-out", name + ".pem", "-notext",
                 cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")
