#!/usr/bin/env bash
# A real mail stack on loopback for mailcanary's tests and demo: Postfix
# receives SMTP and hands mail over LMTP to Dovecot, which serves it over IMAP.
# Everything (configs, queue, mailboxes, certificates, logs) lives in one
# private directory; nothing touches the system's own mail configuration.
#
#   scripts/mailstack.sh install [PKG...]   Debian packages (root, apt), plus any extra PKGs
#   scripts/mailstack.sh up        a fresh stack in $MAILSTACK_DIR
#   scripts/mailstack.sh down | status
#   scripts/mailstack.sh dovecot-stop | dovecot-start    IMAP outage on demand
#   scripts/mailstack.sh kick USER   end USER's IMAP sessions (they must log in again)
#   scripts/mailstack.sh release   deliver mail held by the hold- rule (or by hold REGEX)
#   scripts/mailstack.sh hold REGEX | unhold   hold every message to recipients matching
#                                  REGEX (a silent black hole), or stop holding
#   scripts/mailstack.sh hold-relay a|b | unhold-relay a|b   hold every message that
#                                  relay A (or B) accepts, or stop; release delivers them
#   scripts/mailstack.sh refuse-relay a|b   relay A (or B) refuses every message (554);
#                                  unhold-relay ends it
#   scripts/mailstack.sh hold-route a|b REGEX | unhold-route a|b   hold what relay A (or B)
#                                  accepts for recipients matching REGEX: one route's
#                                  delay (greylisting, a backlog); release delivers it
#   scripts/mailstack.sh app-mta [table|socketmap]   a second Postfix, an application's
#                                  MTA, on $APP_MTA_PORT: it relays through relay A unless
#                                  mailcanary names another next hop, in the table
#                                  $MAILSTACK_DIR/app-mta/relay.cdb that mailcanary writes
#                                  (global.failover.postfix_map; fails safe), or with
#                                  `socketmap` by asking mailcanary on $SOCKETMAP_PORT (the
#                                  old recipe: every message is deferred while nobody answers)
#
# After `up`, $MAILSTACK_DIR/env holds the ports, the password and the CA file.
#
# Addresses at the domain mailcanary.test, all with password $MAILSTACK_PASSWORD:
#   any local part         delivered to its own mailbox (INBOX)
#   spam*                  filed into Junk by a Sieve rule
#   auth-*                 given an Authentication-Results header (spf=pass dkim=fail dmarc=fail)
#   hold-*                 accepted, then held in the Postfix queue (release)
#   throttle-*             refused at RCPT with 450 4.7.1 (rate limited)
#   undeliverable-*        accepted, then bounced: Postfix sends a DSN (5.1.1)
#                          to the envelope sender
#   nobody                 refused at RCPT with 550 5.1.1 (unknown user)
# Every mailbox has the folders INBOX, Junk and Canaries (for cleanup: move).
#
# IMAP and SMTP AUTH also take XOAUTH2 and OAUTHBEARER: Dovecot asks the
# OAuth2 introspection endpoint at http://127.0.0.1:$MAILSTACK_OAUTH_PORT/introspect
# (RFC 7662; `active` and `username`) whether an access token is good. The
# stack does not run that endpoint: a test that uses OAuth2 does.
set -euo pipefail

DIR=${MAILSTACK_DIR:-/tmp/mailcanary-stack}
DOMAIN=mailcanary.test
PASSWORD=${MAILSTACK_PASSWORD:-canary-secret}
SMTP_PORT=${MAILSTACK_SMTP_PORT:-10025}             # plain, no AUTH needed from loopback
SUBMISSION_PORT=${MAILSTACK_SUBMISSION_PORT:-10587} # STARTTLS required, AUTH required
SMTPS_PORT=${MAILSTACK_SMTPS_PORT:-10465}           # implicit TLS, AUTH required
RELAY_A_PORT=${MAILSTACK_RELAY_A_PORT:-10026}       # plain, like SMTP: two relays for failover tests,
RELAY_B_PORT=${MAILSTACK_RELAY_B_PORT:-10027}       # each of which can be made a black hole alone;
                                                    # each names itself relay-a or relay-b.$DOMAIN
                                                    # in its Received header
APP_MTA_PORT=${MAILSTACK_APP_MTA_PORT:-10028}       # the "application's MTA" (app-mta), plain
SOCKETMAP_PORT=${MAILSTACK_SOCKETMAP_PORT:-10030}   # where app-mta asks mailcanary for its relay
IMAP_PORT=${MAILSTACK_IMAP_PORT:-10143}             # plain and STARTTLS
IMAPS_PORT=${MAILSTACK_IMAPS_PORT:-10993}           # implicit TLS
OAUTH_PORT=${MAILSTACK_OAUTH_PORT:-10080}           # the introspection endpoint Dovecot asks (not ours)
LISTEN=${MAILSTACK_LISTEN:-127.0.0.1}               # 0.0.0.0 inside a container
HOSTNAME_SAN=${MAILSTACK_HOSTNAME:-localhost}       # a name the certificate carries

die() { echo "mailstack: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (Postfix starts only as root)"; }

# Every unit file and init script on the system, one a line: the services a
# package installs are the difference before and after it.
list_services() {
  local d
  # /lib is /usr/lib on merged-/usr systems: each unit directory once.
  for d in $(for u in /lib/systemd/system /usr/lib/systemd/system; do [ -d "$u" ] && readlink -f "$u"; done | sort -u); do
    ls "$d"/*.service "$d"/*.socket "$d"/*.timer 2>/dev/null || true
  done
  ls /etc/init.d/* 2>/dev/null || true
}

# The packages' own services are of no use here (the stack runs its own
# daemons from its private directory): leave none enabled at boot or running.
disable_services() {
  [ $# -eq 0 ] && return 0
  local path name names=()
  for path in "$@"; do
    name=$(basename "$path")
    case " ${names[*]} " in *" $name "*) ;; *) names+=("$name") ;; esac
    case "$path" in
      /etc/init.d/*)
        if command -v update-rc.d >/dev/null; then update-rc.d "$name" disable >/dev/null 2>&1 || true; fi
        rm -f /etc/rc[0-6S].d/S[0-9][0-9]"$name" ;;
      *)
        if command -v systemctl >/dev/null; then
          systemctl disable --quiet "$name" >/dev/null 2>&1 || true
          if [ -d /run/systemd/system ]; then systemctl stop "$name" >/dev/null 2>&1 || true; fi
        fi
        # Without systemctl (or where it could not), the enablement is these links.
        find /etc/systemd/system -type l -lname "*/$name" -delete 2>/dev/null || true ;;
    esac
  done
  echo "mailstack: left disabled the system services these packages installed: ${names[*]} (the stack runs its own daemons)"
}

install_packages() {
  need_root
  command -v apt-get >/dev/null || die "apt-get not found: install these Debian packages by hand: postfix dovecot-imapd dovecot-lmtpd dovecot-sieve openssl procps $*"
  local missing=()
  for p in postfix dovecot-imapd dovecot-lmtpd dovecot-sieve openssl procps "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "mailstack: installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -q
  # policy-rc.d keeps the packages' own system services from starting.
  local ours=0 before after
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && ours=1
  fi
  before=$(list_services)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  after=$(list_services)
  [ "$ours" = 1 ] && rm -f /usr/sbin/policy-rc.d
  # shellcheck disable=SC2046
  disable_services $(comm -13 <(echo "$before" | sort -u) <(echo "$after" | sort -u))
}

wait_port() {
  local port=$1 name=$2 i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "mailstack: $name did not open port $port; its log:" >&2
  tail -n 30 "$DIR/log/$name.log" >&2 || true
  exit 1
}

make_certs() {
  local t=$DIR/tls
  mkdir -p "$t"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$t/ca.key" -out "$t/ca.pem" -days 30 -subj "/CN=mailcanary test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$t/key.pem" -out "$t/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$HOSTNAME_SAN" >"$t/ext.cnf"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -out "$t/cert.pem" -days 30 -extfile "$t/ext.cnf" 2>/dev/null
  chmod 644 "$t"/*.pem
}

write_dovecot() {
  local d=$DIR/dovecot
  mkdir -p "$d/run" "$d/state" "$DIR/mail" "$DIR/sieve"
  chown mail:mail "$DIR/mail"
  cat >"$DIR/sieve/before.sieve" <<'SIEVE'
require ["fileinto", "envelope", "editheader"];
if envelope :localpart :matches "to" "auth-*" {
  addheader "Authentication-Results" "mx.mailcanary.test; spf=pass smtp.mailfrom=canary@mailcanary.test; dkim=fail (signature did not verify) header.d=mailcanary.test; dmarc=fail header.from=mailcanary.test";
}
if envelope :localpart :matches "to" "spam*" {
  fileinto "Junk";
  stop;
}
SIEVE
  cat >"$d/dovecot.conf" <<CONF
base_dir = $d/run
state_dir = $d/state
log_path = $DIR/log/dovecot.log
protocols = imap lmtp
listen = $LISTEN
ssl = yes
ssl_cert = <$DIR/tls/cert.pem
ssl_key = <$DIR/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
first_valid_uid = 8
# Room for a thousand-route benchmark: one IMAP session per watched inbox.
default_process_limit = 500
default_client_limit = 4000
mail_location = maildir:$DIR/mail/%n/Maildir
# LMTP delivers user+tag@ to user's INBOX (the detail is not a folder).
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
passdb {
  driver = static
  mechanisms = plain login
  args = password=$PASSWORD
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $d/oauth2.conf.ext
}
userdb {
  driver = static
  # Every user exists: the passdbs only answer logins (PLAIN/LOGIN or OAuth2).
  args = uid=mail gid=mail home=$DIR/mail/%n allow_all_users=yes
}
namespace inbox {
  inbox = yes
  mailbox Junk {
    special_use = \\Junk
    auto = create
  }
  mailbox Canaries {
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = $LISTEN
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = $LISTEN
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  unix_listener $d/lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener $d/auth {
    mode = 0666
  }
}
protocol lmtp {
  mail_plugins = sieve
}
plugin {
  sieve_before = $DIR/sieve/before.sieve
  sieve_extensions = +editheader
}
CONF
  cat >"$d/oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = http://127.0.0.1:$OAUTH_PORT/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
CONF
  sievec -c "$d/dovecot.conf" "$DIR/sieve/before.sieve"
}

write_postfix() {
  local p=$DIR/postfix
  # The queue and data directories live beside the config directory, not in
  # it: postfix-script wants everything under the config directory owned by
  # root and not group-writable, which the queue's sockets never are.
  mkdir -p "$p" "$DIR/postfix-spool" "$DIR/postfix-data"
  chown postfix "$DIR/postfix-data"
  chmod 755 "$p" "$DIR/postfix-spool"
  chmod 700 "$DIR/postfix-data"
  cat >"$p/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $DIR/postfix-spool
data_directory = $DIR/postfix-data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
mydestination =
inet_interfaces = $( [ "$LISTEN" = 0.0.0.0 ] && echo all || echo "$LISTEN" )
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $DIR/log/postfix.log
maillog_file_prefixes = $DIR/log
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
# Sub-addressing (user+tag@): application canaries' addresses reach user's mailbox.
recipient_delimiter = +
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = regexp:$p/mailboxes
virtual_transport = lmtp:unix:$DIR/dovecot/lmtp
transport_maps = regexp:$p/transport
# Accept undeliverable-* at RCPT, so that the error transport bounces it later.
smtpd_reject_unlisted_recipient = no
smtpd_recipient_restrictions = check_recipient_access regexp:$p/hold_access, check_recipient_access regexp:$p/recipient_access, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DIR/dovecot/auth
smtpd_tls_cert_file = $DIR/tls/cert.pem
smtpd_tls_key_file = $DIR/tls/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# Retry deferred mail (Dovecot down, released holds) within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
# A reload or a release while a message is being delivered can hand it to a
# second delivery agent, which stops at its lock ("shared lock ... Resource
# temporarily unavailable"); master then holds that service back for this
# long, 60 s by default: all local delivery would stop for a minute.
service_throttle_time = 1s
CONF
  printf '/^[^@]+@%s$/ OK\n' "${DOMAIN//./\\.}" >"$p/mailboxes"
  : >"$p/hold_access"
  : >"$p/hold_relay_a"
  : >"$p/hold_relay_b"
  : >"$p/hold_route_a"
  : >"$p/hold_route_b"
  printf '/^undeliverable-/ error:5.1.1 Mailbox unavailable\n' >"$p/transport"
  cat >"$p/recipient_access" <<'MAP'
/^nobody@/ 550 5.1.1 Recipient address rejected: User unknown
/^throttle-/ 450 4.7.1 Rate limit exceeded, try again later
/^hold-/ HOLD
MAP
  local auth="-o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
  cat >"$p/master.cf" <<CONF
$LISTEN:$SMTP_PORT inet n - n - - smtpd
$LISTEN:$SUBMISSION_PORT inet n - n - - smtpd -o smtpd_tls_security_level=encrypt $auth
$LISTEN:$SMTPS_PORT inet n - n - - smtpd -o smtpd_tls_wrappermode=yes $auth
$LISTEN:$RELAY_A_PORT inet n - n - - smtpd -o myhostname=relay-a.$DOMAIN -o smtpd_data_restrictions=check_client_access,regexp:$p/hold_relay_a,check_recipient_access,regexp:$p/hold_route_a
$LISTEN:$RELAY_B_PORT inet n - n - - smtpd -o myhostname=relay-b.$DOMAIN -o smtpd_data_restrictions=check_client_access,regexp:$p/hold_relay_b,check_recipient_access,regexp:$p/hold_route_b
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CONF
}

dovecot_start() {
  # Dovecot keeps its caller's stderr open after daemonizing.
  if ! dovecot -c "$DIR/dovecot/dovecot.conf" 2>>"$DIR/log/dovecot.stderr" </dev/null; then
    echo "mailstack: dovecot did not start (is another stack on these ports? scripts/mailstack.sh down):" >&2
    cat "$DIR/log/dovecot.stderr" >&2
    exit 1
  fi
  wait_port "$IMAP_PORT" dovecot
  wait_port "$IMAPS_PORT" dovecot
}

dovecot_stop() {
  # A real outage: the master and every process it started (existing IMAP
  # sessions would otherwise keep serving). The master leads its own session.
  local pid
  pid=$(cat "$DIR/dovecot/run/master.pid" 2>/dev/null || true)
  doveadm -c "$DIR/dovecot/dovecot.conf" stop 2>/dev/null || true
  [ -n "$pid" ] && pkill -KILL -s "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT") 2>/dev/null || return 0
    sleep 0.05
  done
}

up() {
  need_root
  [ -d "$DIR" ] && down
  rm -rf "$DIR"
  mkdir -p "$DIR/log"
  chmod 755 "$DIR" "$DIR/log"
  # Every directory above the stack must be searchable by postfix, dovecot and mail.
  local up=$DIR
  while [ "$up" != / ]; do
    up=$(dirname "$up")
    [ -x "$up" ] && case "$(stat -c %A "$up" | cut -c10)" in x|t) true ;; *) false ;; esac || die "$up is not searchable by the mail users; choose another MAILSTACK_DIR"
  done
  make_certs
  write_dovecot
  write_postfix
  dovecot_start
  postfix -c "$DIR/postfix" check
  if ! postfix -c "$DIR/postfix" start 2>>"$DIR/log/postfix.stderr"; then
    echo "mailstack: postfix did not start:" >&2
    cat "$DIR/log/postfix.stderr" >&2
    tail -n 20 "$DIR/log/postfix.log" >&2 || true
    exit 1
  fi
  wait_port "$SMTP_PORT" postfix
  wait_port "$SUBMISSION_PORT" postfix
  wait_port "$SMTPS_PORT" postfix
  wait_port "$RELAY_A_PORT" postfix
  wait_port "$RELAY_B_PORT" postfix
  cat >"$DIR/env" <<ENV
MAILSTACK_DIR=$DIR
MAILSTACK_DOMAIN=$DOMAIN
MAILSTACK_PASSWORD=$PASSWORD
MAILSTACK_CA=$DIR/tls/ca.pem
MAILSTACK_SMTP_PORT=$SMTP_PORT
MAILSTACK_RELAY_A_PORT=$RELAY_A_PORT
MAILSTACK_RELAY_B_PORT=$RELAY_B_PORT
MAILSTACK_APP_MTA_PORT=$APP_MTA_PORT
MAILSTACK_SOCKETMAP_PORT=$SOCKETMAP_PORT
MAILSTACK_SUBMISSION_PORT=$SUBMISSION_PORT
MAILSTACK_SMTPS_PORT=$SMTPS_PORT
MAILSTACK_IMAP_PORT=$IMAP_PORT
MAILSTACK_IMAPS_PORT=$IMAPS_PORT
MAILSTACK_OAUTH_PORT=$OAUTH_PORT
ENV
  echo "mailstack: up in $DIR (SMTP $SMTP_PORT, submission $SUBMISSION_PORT, SMTPS $SMTPS_PORT, IMAP $IMAP_PORT, IMAPS $IMAPS_PORT)"
}

# An application's own MTA: it relays everything through relay A, unless
# mailcanary's table names another next hop (transport_maps, the `*` entry),
# or with `socketmap`, unless mailcanary answers another when asked.
app_mta() {
  need_root
  local p=$DIR/app-mta how=${1:-table} steer
  case "$how" in
    table) steer="transport_maps = cdb:$p/relay" ;;
    socketmap) steer="sender_dependent_relayhost_maps = socketmap:inet:127.0.0.1:$SOCKETMAP_PORT:relay" ;;
    *) die "usage: $0 app-mta [table|socketmap]" ;;
  esac
  [ -f "$p/main.cf" ] && postfix -c "$p" stop 2>/dev/null || true
  # Queue and data beside the config directory, as for the stack's own Postfix.
  mkdir -p "$p" "$DIR/app-mta-spool" "$DIR/app-mta-data"
  chown postfix "$DIR/app-mta-data"
  cat >"$p/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $DIR/app-mta-spool
data_directory = $DIR/app-mta-data
mail_owner = postfix
setgid_group = postdrop
myhostname = app.$DOMAIN
mydestination =
inet_interfaces = $( [ "$LISTEN" = 0.0.0.0 ] && echo all || echo "$LISTEN" )
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $DIR/log/app-mta.log
maillog_file_prefixes = $DIR/log
alias_maps =
alias_database =
recipient_delimiter = +
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$RELAY_A_PORT
$steer
smtp_dns_support_level = disabled
smtp_connection_cache_on_demand = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
service_throttle_time = 1s
CONF
  # Until mailcanary writes it, an empty table: Postfix uses its relayhost.
  [ "$how" != table ] || [ -f "$p/relay.cdb" ] || printf '%2048s' '' | tr ' ' '\0' >"$p/relay.cdb"
  grep -v "^$LISTEN:" "$DIR/postfix/master.cf" >"$p/master.cf"
  printf '%s:%s inet n - n - - smtpd\n' "$LISTEN" "$APP_MTA_PORT" >>"$p/master.cf"
  postfix -c "$p" check
  postfix -c "$p" start 2>>"$DIR/log/postfix.stderr" || die "app-mta did not start: $(tail -n 5 "$DIR/log/postfix.stderr")"
  wait_port "$APP_MTA_PORT" postfix
}

down() {
  [ -f "$DIR/app-mta/main.cf" ] && postfix -c "$DIR/app-mta" stop 2>/dev/null || true
  [ -f "$DIR/postfix/main.cf" ] && postfix -c "$DIR/postfix" stop 2>/dev/null || true
  [ -f "$DIR/dovecot/dovecot.conf" ] && dovecot_stop
  return 0
}

# What is up, and what each relay does to mail. The exit status is that of
# the stack itself (Postfix and Dovecot): relays and the app MTA are listed.
status() {
  local ok=0 relay mode
  (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && echo "postfix: up (port $SMTP_PORT)" || { echo "postfix: down"; ok=1; }
  (exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT") 2>/dev/null && echo "dovecot: up (port $IMAP_PORT)" || { echo "dovecot: down"; ok=1; }
  for relay in a b; do
    local port=$RELAY_A_PORT
    [ "$relay" = b ] && port=$RELAY_B_PORT
    case "$(cat "$DIR/postfix/hold_relay_$relay" 2>/dev/null)" in
      *HOLD*) mode="holds everything (a black hole: hold-relay $relay; undo with unhold-relay $relay)" ;;
      *REJECT*) mode="refuses everything (refuse-relay $relay; undo with unhold-relay $relay)" ;;
      *) mode="delivers" ;;
    esac
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "relay $relay: up (port $port), $mode"
    else
      echo "relay $relay: down (port $port)"
    fi
  done
  if (exec 3<>"/dev/tcp/127.0.0.1/$APP_MTA_PORT") 2>/dev/null; then
    echo "app-mta: up (port $APP_MTA_PORT), asks the socketmap on port $SOCKETMAP_PORT for its relay"
  else
    echo "app-mta: not started (start it with: $0 app-mta)"
  fi
  return $ok
}

case "${1:-}" in
  install) shift; install_packages "$@" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  dovecot-stop) dovecot_stop ;;
  dovecot-start) dovecot_start ;;
  kick)
    [ -n "${2:-}" ] || die "usage: $0 kick USER"
    doveadm -c "$DIR/dovecot/dovecot.conf" kick "$2" ;;
  release) postsuper -c "$DIR/postfix" -H ALL && postqueue -c "$DIR/postfix" -f ;;
  hold)
    [ -n "${2:-}" ] || die "usage: $0 hold REGEX"
    printf '/%s/ HOLD\n' "$2" >>"$DIR/postfix/hold_access"
    postfix -c "$DIR/postfix" reload 2>/dev/null ;;
  unhold)
    : >"$DIR/postfix/hold_access"
    postfix -c "$DIR/postfix" reload 2>/dev/null ;;
  app-mta) app_mta "${2:-table}" ;;
  hold-relay|refuse-relay|unhold-relay)
    case "${2:-}" in a|b) ;; *) die "usage: $0 $1 a|b" ;; esac
    case "$1" in
      hold-relay) echo '/./ HOLD' ;;
      refuse-relay) echo '/./ REJECT relay refuses everything' ;;
      unhold-relay) ;;
    esac >"$DIR/postfix/hold_relay_$2"
    postfix -c "$DIR/postfix" reload 2>/dev/null ;;
  hold-route|unhold-route)
    case "${2:-}" in a|b) ;; *) die "usage: $0 $1 a|b [REGEX]" ;; esac
    if [ "$1" = hold-route ]; then
      [ -n "${3:-}" ] || die "usage: $0 hold-route a|b REGEX"
      printf '/%s/ HOLD\n' "$3"
    fi >"$DIR/postfix/hold_route_$2"
    postfix -c "$DIR/postfix" reload 2>/dev/null ;;
  *) echo "usage: $0 install | up | down | status | dovecot-stop | dovecot-start | kick USER | release | hold REGEX | unhold | hold-relay a|b | refuse-relay a|b | unhold-relay a|b | hold-route a|b REGEX | unhold-route a|b | app-mta [table|socketmap]" >&2; exit 2 ;;
esac
