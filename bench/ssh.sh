# Sourced by bench/run: the OpenSSH baseline. Debian's sshd on a loopback port, with a forced
# command, the way a sysadmin would give someone one narrow command without sesame.
#
#   ssh_start            sets SSH_OPTS (the ssh client and its options), SSH_DEST (user@host),
#                        SSH_ARGS (both) and SSH_MUX_ARGS (the same through a ControlMaster
#                        connection it opens);
#                        returns 1, saying why, if the baseline cannot run here
#   ssh_stop             stops sshd and the master connection
#
# The login is a dedicated account, `sesbench`, whose shell is /bin/sh, as one would set up for a
# forced command (root's own shell would also read root's ~/.bashrc, which would measure this
# machine's dotfiles, not ssh). Root only: sshd runs in a private mount namespace where that
# account exists (copies of /etc/passwd and /etc/shadow bound over the real ones) and tmpfs covers
# /run and /var/log, so the account, the privilege-separation directory and the login records
# (wtmp, lastlog) never touch the machine.
# openssh-server is installed if missing, with services kept from starting (policy-rc.d), so no
# sshd appears on port 22.

ssh_install() {
    [ -x /usr/sbin/sshd ] && return 0
    echo "bench: installing openssh-server (for the ssh baseline; not started as a service)" >&2
    local guard=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$guard" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$guard"
        chmod 755 "$guard"
        created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local status=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; } || status=$?
    [ "$created" = 1 ] && rm -f "$guard"
    return "$status"
}

ssh_start() {
    local work port
    if [ "$(id -u)" != 0 ]; then
        echo "bench: the ssh baseline needs root (sshd with a forced command for root); skipped" >&2
        return 1
    fi
    ssh_install || { echo "bench: openssh-server could not be installed; ssh baseline skipped" >&2; return 1; }
    # sshd reads authorized_keys as the account, so this directory (not the caller's) is open to it.
    work=$(mktemp -d /tmp/sesame-bench-ssh.XXXXXX)
    SSH_WORK=$work
    chmod 755 "$work"
    mkdir -p "$work/home"
    { cat /etc/passwd; echo "sesbench:x:59999:59999:sesame bench:$work/home:/bin/sh"; } > "$work/passwd"
    { cat /etc/shadow; echo "sesbench:*:20000:0:99999:7:::"; } > "$work/shadow"
    chmod 600 "$work/shadow"
    ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
    # The forced command: whatever the client asks, this runs (through the account's shell).
    printf 'restrict,command="echo hello" %s\n' "$(cat "$work/client_key.pub")" > "$work/authorized_keys"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$work/sshd_config" <<CONF
ListenAddress 127.0.0.1:$port
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
CONF
    unshare --mount --propagation private sh -c '
        mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd &&
        mount -t tmpfs -o mode=755 tmpfs /var/log &&
        mount --bind "$2/passwd" /etc/passwd && mount --bind "$2/shadow" /etc/shadow &&
        exec /usr/sbin/sshd -D -e -f "$1"' sh "$work/sshd_config" "$work" 2> "$work/sshd.log" &
    SSH_SSHD_PID=$!
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$work/host_key.pub")" > "$work/known_hosts"
    SSH_OPTS=(ssh -F /dev/null -p "$port" -i "$work/client_key" -o IdentitiesOnly=yes -o BatchMode=yes
        -o UserKnownHostsFile="$work/known_hosts" -o LogLevel=ERROR)
    SSH_DEST=sesbench@127.0.0.1
    SSH_ARGS=("${SSH_OPTS[@]}" "$SSH_DEST")
    local ready=0
    for _ in $(seq 100); do
        if [ "$("${SSH_ARGS[@]}" x </dev/null 2>/dev/null)" = hello ]; then ready=1; break; fi
        sleep 0.1
    done
    if [ "$ready" != 1 ]; then
        echo "bench: sshd did not answer; ssh baseline skipped:" >&2
        cat "$work/sshd.log" >&2
        ssh_stop
        return 1
    fi
    SSH_MUX_ARGS=("${SSH_OPTS[@]}" -o ControlPath="$work/mux" -o ControlMaster=no "$SSH_DEST")
    "${SSH_OPTS[@]}" -o ControlPath="$work/mux" -o ControlMaster=yes -o ControlPersist=600 \
        -fN "$SSH_DEST" </dev/null
}

ssh_stop() {
    if [ -n "${SSH_WORK:-}" ] && [ -S "$SSH_WORK/mux" ]; then
        "${SSH_OPTS[@]}" -o ControlPath="$SSH_WORK/mux" -O exit "$SSH_DEST" 2>/dev/null || true
    fi
    [ -n "${SSH_SSHD_PID:-}" ] && kill "$SSH_SSHD_PID" 2>/dev/null
    SSH_SSHD_PID=
    [ -n "${SSH_WORK:-}" ] && rm -rf "$SSH_WORK"
    SSH_WORK=
    return 0
}
