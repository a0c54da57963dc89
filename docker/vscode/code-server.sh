#!/bin/sh
# code-server from /opt/code-server, on the image's Node 24 (the version its native modules were compiled for).
exec /opt/node/bin/node /opt/code-server/node_modules/code-server/out/node/entry.js "$@"
