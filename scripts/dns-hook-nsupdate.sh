#!/usr/bin/env bash
# DNS-01 hook for the gateway's exec DNS hook (TLS_DNS_HOOK=exec, TLS_DNS_HOOK_COMMAND=<this script>), speaking
# RFC 2136 dynamic updates signed with TSIG through Debian's `nsupdate` (package bind9-dnsutils) to BIND, Knot,
# PowerDNS or any server that accepts them.
#
#   dns-hook-nsupdate.sh set   <fqdn> <value>   add the TXT record <fqdn> "<value>"
#   dns-hook-nsupdate.sh clear <fqdn> <value>   remove exactly that value (other values of <fqdn> stay)
#
# <fqdn> is the full record name, `_acme-challenge.` included (the gateway prefixes it: gateway/tls/acme.ts).
# `set` adds rather than replaces: two authorizations can answer on one name at once (`*.example.com`, and
# `example.com` when it gets a DNS-01 challenge, both use `_acme-challenge.example.com`).
#
# Environment:
#   NSUPDATE_SERVER    required  primary server accepting the updates: host, host:port, [v6] or [v6]:port (53)
#   NSUPDATE_KEY_FILE  required  TSIG key file as `tsig-keygen -a hmac-sha256 <name>` writes it
#   NSUPDATE_ZONE      optional  zone to update; without it nsupdate asks NSUPDATE_SERVER for the name's SOA
#   NSUPDATE_TTL       60        TTL of the TXT record, seconds
#   NSUPDATE_TIMEOUT   10        seconds for the update, and again for NSUPDATE_SERVER to answer the change
#                                (at most 14: the gateway stops a hook after 30 s)
#
# Returns once the server accepted the update (NOERROR) and answers the change itself (`set`: the TXT value is
# served, `clear`: it is not), so the CA never asks before the record is there. Secondaries are not waited
# for: point the CA's view (your zone's NS records) at servers that get updates at once, or at the primary.
# Exit status: 0 done, 1 the update or its check failed (nsupdate's own message on stderr), 2 bad usage or config.
set -euo pipefail

me="dns-hook-nsupdate"
usage() { echo "usage: $me set|clear <fqdn> <value>" >&2; exit 2; }
bad() { echo "$me: $*" >&2; exit 2; }
fail() { echo "$me: $*" >&2; exit 1; }

# A DNS name of letters, digits, '-' and '_' labels (no trailing dot here); nothing that could break out of
# nsupdate's line-based input.
valid_name() {
  local name="$1" label labels
  [[ "$name" =~ ^[A-Za-z0-9_.-]{1,253}$ && "$name" != .* && "$name" != *. && "$name" != *..* ]] || return 1
  IFS=. read -ra labels <<<"$name"
  for label in "${labels[@]}"; do
    [[ "$label" =~ ^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$ ]] || return 1
  done
}

[ "$#" -eq 3 ] || usage
action="$1"
fqdn="${2%.}"
value="$3"
case "$action" in set | clear) ;; *) usage ;; esac
valid_name "$fqdn" || bad "fqdn must be a DNS name (got '$2')"
# The key is meant for challenge records only; refusing anything else here keeps a wrong caller from writing
# other TXT records even where the server's update-policy is broader than it should be.
[[ "$fqdn" == _acme-challenge.?* ]] || bad "fqdn must start with _acme-challenge. (got '$2')"
# A DNS-01 value is base64url (43 characters for SHA-256); anything else is not a challenge answer.
[[ "$value" =~ ^[A-Za-z0-9_-]{1,255}$ ]] || bad "value must be the DNS-01 challenge answer (base64url, got '$value')"

server="${NSUPDATE_SERVER:-}"
[ -n "$server" ] || bad "NSUPDATE_SERVER is required (host or host:port of the primary server accepting updates)"
port=53
if [[ "$server" =~ ^\[([0-9A-Fa-f:.]+)\](:([0-9]+))?$ ]]; then
  host="${BASH_REMATCH[1]}"
  port="${BASH_REMATCH[3]:-53}"
elif [[ "$server" =~ ^([A-Za-z0-9.-]+)(:([0-9]+))?$ ]]; then
  host="${BASH_REMATCH[1]}"
  port="${BASH_REMATCH[3]:-53}"
elif [[ "$server" =~ ^[0-9A-Fa-f:]+$ ]]; then
  host="$server" # a bare IPv6 address: no port (write [v6]:port for one)
else
  bad "NSUPDATE_SERVER must be host, host:port, [v6] or [v6]:port (got '$server')"
fi
[ "$port" -ge 1 ] 2>/dev/null && [ "$port" -le 65535 ] || bad "NSUPDATE_SERVER port must be 1-65535 (got '$server')"

key_file="${NSUPDATE_KEY_FILE:-}"
[ -n "$key_file" ] || bad "NSUPDATE_KEY_FILE is required (a TSIG key file: tsig-keygen -a hmac-sha256 <name> > <file>)"
[ -f "$key_file" ] && [ -r "$key_file" ] || bad "NSUPDATE_KEY_FILE $key_file is not a readable file"

zone="${NSUPDATE_ZONE:-}"
zone="${zone%.}"
if [ -n "$zone" ]; then
  valid_name "$zone" || bad "NSUPDATE_ZONE must be a DNS name (got '$NSUPDATE_ZONE')"
  shopt -s nocasematch
  [[ "$fqdn" == *".$zone" ]] || bad "$fqdn is not in NSUPDATE_ZONE $zone"
  shopt -u nocasematch
fi

ttl="${NSUPDATE_TTL:-60}"
[[ "$ttl" =~ ^[0-9]{1,5}$ ]] && [ "$ttl" -le 86400 ] || bad "NSUPDATE_TTL must be 0-86400 seconds (got '$ttl')"
timeout="${NSUPDATE_TIMEOUT:-10}"
[[ "$timeout" =~ ^[0-9]{1,2}$ ]] && [ "$timeout" -ge 1 ] && [ "$timeout" -le 14 ] ||
  bad "NSUPDATE_TIMEOUT must be 1-14 seconds (the gateway stops a hook after 30 s; got '$timeout')"

command -v nsupdate >/dev/null || fail "nsupdate not found: install Debian's bind9-dnsutils"
command -v dig >/dev/null || fail "dig not found: install Debian's bind9-dnsutils"

# nsupdate reports a key it cannot read and then sends the update unsigned (answered REFUSED, which would point
# at the server's policy): load the key alone first, sending nothing.
if key_error="$(nsupdate -k "$key_file" <<<quit 2>&1)" && [ -n "$key_error" ]; then
  bad "NSUPDATE_KEY_FILE $key_file is not a TSIG key nsupdate can use: $(tr '\n' ' ' <<<"$key_error" | sed 's/ $//')"
elif [ -n "$key_error" ]; then
  bad "NSUPDATE_KEY_FILE $key_file: nsupdate failed loading it: $(tr '\n' ' ' <<<"$key_error" | sed 's/ $//')"
fi

if [ "$action" = set ]; then
  change="update add $fqdn. $ttl TXT \"$value\""
else
  change="update delete $fqdn. TXT \"$value\""
fi
input="server $host $port"$'\n'
[ -n "$zone" ] && input+="zone $zone."$'\n'
input+="$change"$'\n'"send"$'\n'

# nsupdate exits 0 only when the server answered the update with NOERROR; its messages (REFUSED, NOTAUTH(BADSIG),
# "could not reach any name server") go to stderr, which the gateway puts in its error.
if ! out="$(nsupdate -k "$key_file" -t "$timeout" <<<"$input" 2>&1)"; then
  out="$(tr '\n' ' ' <<<"$out" | sed 's/  */ /g; s/ $//')"
  hint=""
  case "$out" in
    *NOTAUTH* | *BADSIG* | *BADKEY* | *BADTIME*) hint=" (the server does not accept the TSIG key: check NSUPDATE_KEY_FILE, its key name and secret must match the server's, and the clocks)" ;;
    *REFUSED*) hint=" (the server's update-policy/allow-update does not let this key change $fqdn TXT)" ;;
    *NOTZONE*) hint=" (set NSUPDATE_ZONE to the zone holding $fqdn)" ;;
  esac
  fail "$action $fqdn TXT at $host#$port failed: ${out:-nsupdate exited with an error}$hint"
fi

# The server said NOERROR; wait until it also serves the change (a server may apply updates asynchronously,
# or answer from a cache for a moment), asking it directly without recursion.
deadline=$((SECONDS + timeout))
for (( ; ; )); do
  if answer="$(dig +short +norecurse +time=2 +tries=1 -p "$port" "@$host" "$fqdn." TXT 2>&1)"; then
    if grep -qxF "\"$value\"" <<<"$answer"; then served="set"; else served="clear"; fi
    if [ "$served" = "$action" ]; then exit 0; fi
  else
    answer="no answer: $answer"
  fi
  [ "$SECONDS" -lt "$deadline" ] || break
  sleep 0.2
done
answer="$(tr '\n' ' ' <<<"$answer" | sed 's/  */ /g; s/ $//')"
if [ "$action" = set ]; then
  fail "$host#$port accepted the update but does not serve $fqdn TXT \"$value\" after ${timeout}s (dig: ${answer:-empty answer})"
fi
fail "$host#$port accepted the removal but $fqdn TXT \"$value\" is still not gone after ${timeout}s (dig: $answer)"
