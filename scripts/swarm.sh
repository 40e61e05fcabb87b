#!/usr/bin/env bash
# A multi-node Docker Swarm on this one machine, for tests: each node is a container that runs
# its own dockerd (Docker in Docker, without --privileged, which this host refuses).
#
#   scripts/swarm.sh image   builds the node image skiff/swarm-node:latest once (skipped when it
#                            exists; remove it to rebuild): a Debian bookworm root file system made
#                            here with debootstrap (docker.io, iptables, busybox-static, ...) and
#                            `docker import`ed, whose entry point starts
#                            `dockerd --storage-driver=vfs` listening on the unix socket and on
#                            tcp://0.0.0.0:2375 (no TLS: the bridge is private to this machine)
#   scripts/swarm.sh up N    (N = 1..5, default 2) replaces any previous nodes by N node
#                            containers skiff-swarm-1..N on the bridge network skiff-swarm
#                            ($SKIFF_SWARM_SUBNET, default 10.231.0.0/24), makes node 1 the
#                            swarm manager and the others workers, creates the attachable overlay
#                            network skiff-fn ($SKIFF_SWARM_FN_SUBNET, default 10.232.0.0/24) and
#                            prints the manager's Docker API address, tcp://<node 1 ip>:2375, as
#                            its last stdout line
#   scripts/swarm.sh down    removes the node containers and the network, and stops the
#                            registry below (idempotent)
#   scripts/swarm.sh registry  starts (unless it answers already) Debian's docker-registry on
#                            0.0.0.0:$SKIFF_SWARM_REGISTRY_PORT (default 5099), its storage in
#                            target/swarm-registry, and prints the address the nodes pull from,
#                            <host bridge ip>:<port> (10.231.0.1:5099), as its last stdout line;
#                            the host engine pushes to it as 127.0.0.1:<port>
#   scripts/swarm.sh check   smoke check of the running swarm (at least 2 nodes), one line per
#                            check, exit 0 only if all pass: the manager's API answers from the
#                            host; skiff/echo-http:latest is loaded into every node from the host
#                            engine (nothing can be pulled from the internet here); a 4-replica
#                            service on skiff-fn runs tasks on more than one node; a task on node
#                            2 answers HTTP on its overlay task IP from a container on node 1; a
#                            registry on the host (Debian's docker-registry, started here on
#                            0.0.0.0:$SKIFF_SWARM_REGISTRY_PORT, default 5099) serves a pull by
#                            digest to every node at the host's bridge address (10.231.0.1).
#                            The service VIP is reported, not checked: the kernel here has no
#                            IPVS, so swarm's VIP load balancing does not work; address tasks by
#                            their own IPs.
#
# The nodes' dockerd flags: --storage-driver=vfs -H unix:///var/run/docker.sock
# -H tcp://0.0.0.0:2375 --tls=false --cgroup-parent=/skiff-swarm/<node>
# --insecure-registry <skiff-swarm subnet> (plain-HTTP registries on the bridge, e.g. the host's).
#
# Needs root (debootstrap), Docker, and Debian's package servers for `image`; the host's
# skiff/echo-http:latest and skiff/hello:latest (scripts/build-examples.sh) for `check`.
# Set DEBIAN_MIRROR to use another Debian mirror.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

image=skiff/swarm-node:latest
net=skiff-swarm
subnet=${SKIFF_SWARM_SUBNET:-10.231.0.0/24}
fn_subnet=${SKIFF_SWARM_FN_SUBNET:-10.232.0.0/24}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
prefix=skiff-swarm

log() { echo "swarm: $*" >&2; }
die() { echo "swarm: error: $*" >&2; exit 1; }

nodes() { docker ps -a --filter "label=skiff.swarm.node" --format '{{.Names}}' | sort; }
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$1"; }
# The host's address on the skiff-swarm bridge: the subnet's first address.
gw_ip() { local base=${subnet%/*}; echo "${base%.*}.1"; }

# --- image ---------------------------------------------------------------------------------------

cmd_image() {
  if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image exists"
    return 0
  fi
  mkdir -p "$root/target"
  exec 9>"$root/target/.swarm-image.lock"
  flock 9
  if docker image inspect "$image" >/dev/null 2>&1; then return 0; fi

  work=""
  cleanup() {
    if [ -n "$work" ] && [ -d "$work" ]; then
      # debootstrap mounts proc and sys in the new root; never leave them mounted.
      for m in proc sys dev/pts; do
        if mountpoint -q "$work/rootfs/$m" 2>/dev/null; then umount -l "$work/rootfs/$m" || true; fi
      done
      rm -rf "$work"
    fi
  }
  trap cleanup EXIT
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/skiff-swarm-node.XXXXXX")
  log "debootstrap bookworm into $work/rootfs (from $mirror)"
  if ! debootstrap --variant=minbase \
      --include=docker.io,iptables,ca-certificates,iproute2,procps,busybox-static,tini \
      bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 40 "$work/debootstrap.log" >&2
    [ -f "$work/rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$work/rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  rm -rf "$work/rootfs/var/cache/apt/"*.bin "$work/rootfs/var/cache/apt/archives/"*.deb \
    "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/log/"*.log "$work/rootfs/debootstrap" \
    "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"* "$work/rootfs/usr/share/info/"* \
    "$work/rootfs/usr/share/locale/"*
  # The entry point: pick the iptables back end that works in this kernel, then run dockerd.
  cat >"$work/rootfs/usr/local/sbin/skiff-swarm-node" <<'NODE'
#!/bin/sh
# Entry point of a skiff swarm node: dockerd on vfs (no overlayfs inside a container), on the
# unix socket and on tcp://0.0.0.0:2375 (--tls=false says so explicitly, which spares the 15 s
# start-up delay dockerd adds to a TCP listener without TLS). Extra arguments go to dockerd.
set -e
if ! iptables -t nat -S >/dev/null 2>&1; then
  update-alternatives --quiet --set iptables /usr/sbin/iptables-legacy
  update-alternatives --quiet --set ip6tables /usr/sbin/ip6tables-legacy
fi
exec dockerd --storage-driver=vfs -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375 \
  --tls=false --cgroup-parent="/skiff-swarm/$(hostname)" "$@"
NODE
  chmod 0755 "$work/rootfs/usr/local/sbin/skiff-swarm-node"
  tar -C "$work/rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'LABEL skiff.swarm=true' \
    -c 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/sbin/skiff-swarm-node"]' \
    -c 'CMD []' - "$image" >/dev/null
  cleanup
  work=""
  log "built $image"
}

# --- up / down -----------------------------------------------------------------------------------

cmd_down() {
  local n
  registry_stop
  for n in $(nodes); do docker rm -f -v "$n" >/dev/null; done
  if docker network inspect "$net" >/dev/null 2>&1; then docker network rm "$net" >/dev/null; fi
  # The nodes' dockerds put their containers' cgroups under /skiff-swarm/<node> (cgroup v1, the
  # host's hierarchy is shared); remove the empty directories they leave.
  find /sys/fs/cgroup/*/skiff-swarm /sys/fs/cgroup/skiff-swarm -depth -type d \
    -exec rmdir {} + 2>/dev/null || true
  log "down"
}

wait_dockerd() {
  local n=$1 i
  for i in $(seq 1 120); do
    if docker exec "$n" docker info >/dev/null 2>&1; then return 0; fi
    if [ "$(docker inspect -f '{{.State.Running}}' "$n")" != true ]; then
      docker logs --tail 30 "$n" >&2 || true
      die "$n exited"
    fi
    sleep 0.5
  done
  docker logs --tail 30 "$n" >&2 || true
  die "the dockerd of $n does not answer"
}

cmd_up() {
  local count=${1:-2} i n
  case "$count" in [1-5]) ;; *) die "usage: swarm.sh up N (N = 1..5)" ;; esac
  docker image inspect "$image" >/dev/null 2>&1 || die "no $image: run scripts/swarm.sh image"
  cmd_down
  docker network create --driver bridge --subnet "$subnet" --gateway "$(gw_ip)" --label skiff.swarm=true "$net" >/dev/null
  for i in $(seq 1 "$count"); do
    n=$prefix-$i
    docker run -d --name "$n" --hostname "$n" --network "$net" \
      --label skiff.swarm.node="$i" \
      --cap-add ALL --cap-drop SYS_RESOURCE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /var/lib/docker:exec \
      "$image" --insecure-registry "$subnet" >/dev/null
  done
  for i in $(seq 1 "$count"); do wait_dockerd "$prefix-$i"; done
  local mgr_ip token
  mgr_ip=$(node_ip "$prefix-1")
  docker exec "$prefix-1" docker swarm init --advertise-addr "$mgr_ip" >/dev/null
  token=$(docker exec "$prefix-1" docker swarm join-token -q worker)
  for i in $(seq 2 "$count"); do
    n=$prefix-$i
    docker exec "$n" docker swarm join --advertise-addr "$(node_ip "$n")" --token "$token" \
      "$mgr_ip:2377" >/dev/null
  done
  # Wait until the manager sees every node ready.
  for i in $(seq 1 120); do
    [ "$(docker exec "$prefix-1" docker node ls --format '{{.Status}}' | grep -c '^Ready$')" = "$count" ] && break
    [ "$i" = 120 ] && die "not all $count nodes are ready"
    sleep 0.5
  done
  docker exec "$prefix-1" docker network create --driver overlay --attachable \
    --subnet "$fn_subnet" skiff-fn >/dev/null
  log "up: $count nodes, manager $prefix-1 ($mgr_ip), overlay network skiff-fn ($fn_subnet)"
  echo "tcp://$mgr_ip:2375"
}

# --- registry ------------------------------------------------------------------------------------

# registry_start DIR PORT: Debian's docker-registry on 0.0.0.0:PORT (installed if missing), its
# storage and log in DIR; sets reg_pid and returns once it answers.
registry_start() {
  local dir=$1 port=$2 i
  if ! command -v docker-registry >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends docker-registry >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; }
  fi
  mkdir -p "$dir"
  cat >"$dir/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:$port
YML
  setsid docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 </dev/null &
  reg_pid=$!
  for i in $(seq 1 50); do
    kill -0 "$reg_pid" 2>/dev/null || { cat "$dir/registry.log" >&2; die "docker-registry exited"; }
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "docker-registry does not answer on port $port"
}

reg_dir=$root/target/swarm-registry

# The registry the tests push to: started unless it answers already; prints HOST:PORT, the
# address the nodes pull from (the host's bridge address), as its last stdout line.
cmd_registry() {
  local port=${SKIFF_SWARM_REGISTRY_PORT:-5099}
  if ! curl -fsS -m 2 "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
    registry_start "$reg_dir" "$port"
    echo "$reg_pid" >"$reg_dir/pid"
    log "registry on 0.0.0.0:$port (pid $reg_pid, storage $reg_dir/registry)"
  fi
  echo "$(gw_ip):$port"
}

registry_stop() {
  if [ -f "$reg_dir/pid" ]; then
    kill "$(cat "$reg_dir/pid")" 2>/dev/null || true
  fi
  rm -rf "$reg_dir"
}

# --- check ---------------------------------------------------------------------------------------

failed=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }

cmd_check() {
  local all count ok i
  mgr=$prefix-1 svc=skiff-swarm-check reg_pid="" reg_port="" tmp="" 
  all=$(nodes)
  count=$(echo "$all" | grep -c . || true)
  [ "$count" -ge 2 ] || die "check needs a swarm of at least 2 nodes (scripts/swarm.sh up 2)"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/skiff-swarm-check.XXXXXX")
  check_cleanup() {
    docker exec "$mgr" docker service rm "$svc" >/dev/null 2>&1 || true
    [ -z "$reg_pid" ] || kill "$reg_pid" 2>/dev/null || true
    docker rmi "127.0.0.1:$reg_port/skiff-swarm/hello:check" >/dev/null 2>&1 || true
    rm -rf "$tmp"
  }
  trap check_cleanup EXIT

  # 0. The manager's Docker API answers from the host, on its bridge address.
  local api
  api=$(node_ip "$mgr"):2375
  [ "$(curl -fsS -m 5 "http://$api/_ping" 2>/dev/null)" = OK ] \
    && pass "manager Docker API answers at tcp://$api" || fail "manager Docker API at tcp://$api"

  # Every node's dockerd answers (waits up to a minute each; one run in about 50 saw a node's
  # daemon stop answering right after `up`, see docs/ARCHITECTURE.md).
  ok=1
  for n in $all; do
    for i in $(seq 1 120); do
      docker exec "$n" docker info >/dev/null 2>&1 && break
      if [ "$i" = 120 ]; then
        ok=0
        echo "swarm: the dockerd of $n does not answer; its last log lines:" >&2
        docker logs --tail 20 "$n" >&2 2>&1 || true
      fi
      sleep 0.5
    done
  done
  [ "$ok" = 1 ] && pass "the dockerds of $count nodes answer" || fail "not every node's dockerd answers"

  # 1. Every node has the function image, loaded from the host engine.
  docker save skiff/echo-http:latest >"$tmp/echo-http.tar"
  local n pids=()
  ok=1
  for n in $all; do
    docker exec -i "$n" docker load -q <"$tmp/echo-http.tar" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  [ "$ok" = 1 ] && pass "skiff/echo-http:latest loaded into $count nodes" \
    || fail "docker load of skiff/echo-http:latest into the nodes"

  # A tiny image with an HTTP client (busybox wget), made on node 1 from the node's busybox.
  # (Its wget -T segfaults here; `timeout` bounds the requests instead.)
  docker exec "$mgr" sh -c 'set -e; d=$(mktemp -d); mkdir "$d/bin"; cp /bin/busybox "$d/bin/"
    tar -C "$d" -c . | docker import -c "ENTRYPOINT [\"/bin/busybox\"]" - skiff-swarm/probe >/dev/null
    rm -rf "$d"'

  # 2. A 4-replica service on the overlay network, tasks spread over the nodes.
  docker exec "$mgr" docker service rm "$svc" >/dev/null 2>&1 || true
  docker exec "$mgr" docker service create --detach --quiet --no-resolve-image --name "$svc" \
    --replicas 4 --network skiff-fn -e PORT=8080 --label skiff-swarm=check \
    skiff/echo-http:latest >/dev/null
  local running=0
  for i in $(seq 1 120); do
    running=$(docker exec "$mgr" docker service ps "$svc" --filter desired-state=running \
      --format '{{.CurrentState}}' | grep -c '^Running' || true)
    [ "$running" = 4 ] && break
    sleep 0.5
  done
  [ "$running" = 4 ] && pass "service $svc: 4 of 4 tasks running" \
    || fail "service $svc: $running of 4 tasks running"
  local spread
  spread=$(docker exec "$mgr" docker service ps "$svc" --filter desired-state=running \
    --format '{{.Node}}' | sort -u | paste -sd ' ')
  [ "$(echo "$spread" | wc -w)" -ge 2 ] && pass "tasks run on more than one node: $spread" \
    || fail "tasks run on one node only: $spread"

  # 3. A task on node 2, by its overlay task IP, from a container on node 1.
  local task ip="" t
  for t in $(docker exec "$mgr" docker service ps -q "$svc" --filter desired-state=running \
      --filter node=$prefix-2); do
    ip=$(docker exec "$mgr" docker inspect --type task -f \
      '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "skiff-fn"}}{{index .Addresses 0}}{{end}}{{end}}' "$t")
    ip=${ip%/*}
    [ -n "$ip" ] && break
  done
  if [ -z "$ip" ]; then
    fail "no running task on $prefix-2 with an address on skiff-fn"
  else
    local body=""
    for i in 1 2 3 4 5; do
      body=$(docker exec "$mgr" docker run --rm --network skiff-fn skiff-swarm/probe \
        timeout 10 wget -q -O - "http://$ip:8080/" 2>&1) && break
      body=""
      sleep 1
    done
    [ -n "$body" ] && pass "task on $prefix-2 answers http://$ip:8080/ from a container on $prefix-1" \
      || fail "task on $prefix-2 at http://$ip:8080/ does not answer from $prefix-1"
  fi
  local vip
  vip=$(docker exec "$mgr" docker service inspect -f \
    '{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}' "$svc")
  vip=${vip%/*}
  if docker exec "$mgr" docker run --rm --network skiff-fn skiff-swarm/probe \
      timeout 5 wget -q -O /dev/null "http://$vip:8080/" >/dev/null 2>&1; then
    echo "info service VIP $vip answers"
  else
    echo "info service VIP $vip does not answer (expected here: no IPVS); address tasks directly"
  fi

  # 4. A registry on the host, on its skiff-swarm bridge address, serves pulls by digest.
  local gw
  gw=$(gw_ip)
  reg_port=${SKIFF_SWARM_REGISTRY_PORT:-5099}
  # One that answers already (`swarm.sh registry`) is used as it is.
  if ! curl -fsS -m 2 "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1; then
    registry_start "$tmp" "$reg_port"
  fi
  local ref digest
  ref=127.0.0.1:$reg_port/skiff-swarm/hello:check
  docker tag skiff/hello:latest "$ref"
  if digest=$(docker push "$ref" 2>&1 | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p') \
      && [ -n "$digest" ]; then
    ok=1
    for n in $all; do
      docker exec "$n" docker pull -q "$gw:$reg_port/skiff-swarm/hello@$digest" >/dev/null 2>&1 \
        || ok=0
    done
    [ "$ok" = 1 ] && pass "registry on the host at $gw:$reg_port: $count nodes pull by digest" \
      || fail "registry on the host at $gw:$reg_port: pull by digest from the nodes"
  else
    fail "push to the registry on 127.0.0.1:$reg_port"
    cat "$tmp/registry.log" >&2
  fi

  [ "$failed" = 0 ] && echo "all checks passed" || echo "some checks failed"
  return "$failed"
}

case "${1:-}" in
  image) cmd_image ;;
  up) cmd_up "${2:-2}" ;;
  down) cmd_down ;;
  check) cmd_check ;;
  registry) cmd_registry ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
