#!/bin/sh
# SPDX-License-Identifier: MIT
# heald's verify command for the demo shop: exit 0 when the shop on 127.0.0.1:PORT
# serves its catalog, takes an order (which goes through payments) and accepts a return.
set -u
port=${1:?usage: shop-verify.sh PORT}
base="http://127.0.0.1:$port"
code() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$@" 2>/dev/null || echo 000; }

c=$(code "$base/catalog")
[ "$c" = 200 ] || { echo "GET /catalog: $c"; exit 1; }
c=$(code -X POST -d '{"item":"sku-1","qty":1}' "$base/orders")
[ "$c" = 201 ] || { echo "POST /orders: $c"; exit 1; }
c=$(code -X POST -d '{"order_id":"ord-verify","reason":"damaged"}' "$base/returns")
[ "$c" = 200 ] || { echo "POST /returns: $c"; exit 1; }
echo "catalog, order and return OK"
