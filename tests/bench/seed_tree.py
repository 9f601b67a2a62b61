#!/usr/bin/env python3
"""Publishes a dependency tree of N packages to a registry over HTTP, the way
libnpmpublish does (one PUT per version, tarball base64 in the body).

    seed_tree.py REGISTRY_URL TOKEN PREFIX N

Package i depends on packages 2i+1 and 2i+2 (when they exist), so installing
PREFIX-0 pulls in all N packages. The tarballs are byte for byte the same on
every run. Standard library only.
"""
import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request


def tarball(name, version, deps):
    manifest = {"name": name, "version": version, "main": "index.js", "dependencies": deps}
    files = {
        "package/package.json": json.dumps(manifest).encode(),
        "package/index.js": ("module.exports = %r;\n" % name).encode(),
    }
    raw = io.BytesIO()
    # A fixed gzip header time too: the same tree gets the same bytes (and
    # integrity) in every registry it is published to.
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 499162500
            tar.addfile(info, io.BytesIO(data))
    return manifest, raw.getvalue()


def publish(registry, token, name, version, deps):
    manifest, tgz = tarball(name, version, deps)
    manifest["dist"] = {
        "shasum": hashlib.sha1(tgz).hexdigest(),
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
        "tarball": "%s/%s/-/%s-%s.tgz" % (registry, name, name, version),
    }
    manifest["_id"] = "%s@%s" % (name, version)
    body = {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "_attachments": {"%s-%s.tgz" % (name, version): {"content_type": "application/octet-stream", "data": base64.b64encode(tgz).decode(), "length": len(tgz)}},
    }
    req = urllib.request.Request("%s/%s" % (registry, name), data=json.dumps(body).encode(), method="PUT")
    req.add_header("content-type", "application/json")
    req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=60) as resp:
        if resp.status not in (200, 201):
            raise SystemExit("publish %s: %s" % (name, resp.status))


def main():
    registry, token, prefix, n = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], int(sys.argv[4])
    for i in reversed(range(n)):
        deps = {"%s-%d" % (prefix, c): "^1.0.0" for c in (2 * i + 1, 2 * i + 2) if c < n}
        publish(registry, token, "%s-%d" % (prefix, i), "1.0.0", deps)


if __name__ == "__main__":
    main()
