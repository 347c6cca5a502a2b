# The default sesame policy.
#
# sesamed asks one question per request: what is `data.sesame.decision`?
# The answer is an object:
#
#   {
#     "allow":   true | false,
#     "reasons": ["human-readable sentence", ...],   # shown in the audit and decision logs
#     "grant":   {                                   # what the command may do on this host
#       "firewall": {"ports": [22], "protos": ["tcp"], "sources": ["caller"], "max_ttl_s": 3600},
#       "salt":     {"states": ["nginx"]},
#       "users":    {"names": ["alice"], "groups": ["ops"]},  # or {"self": true}
#       "exec":     {"programs": {"restart-app": {"unit": ["web"]}}},
#       "hostkeys": {"list": true}
#     },
#     "limits":  {"timeout_ms": 5000, "memory_mb": 64, "output_kb": 64, "host_calls": 1000},
#     "approvals": {"count": 1, "groups": ["security"], "ttl_s": 900}  # optional: run only
#   }                                                # once others approve
#
# The daemon fails closed: if `decision` is undefined, raises an error, has a key
# it does not know or a value of the wrong type, the request is denied. Anything
# the grant leaves out is not granted; a limit left out takes the daemon default.
#
# The input document (built by sesamed for each authenticated request):
#
#   input.client   {name, key, groups}       the enrolled client (clients.toml)
#   input.request  {id, cluster, command, args, transport: "quic"|"sqs", source_ip,
#                   reason}                  reason: absent when the client gave none
#   input.host     {name, labels}
#   input.module   {name, digest: "sha256:<hex>", imports: ["sesame:host/firewall", ...]}
#   input.now_ns   nanoseconds since the Unix epoch
#
# This file keeps its rules in data (data.json, key `acl`), so most sites only
# edit data.json:
#
#   acl.groups[GROUP][CLUSTER] = [COMMAND, ...]   GROUP may run CLUSTER::COMMAND;
#                                                 "*" as CLUSTER or COMMAND means any.
#   acl.clusters[CLUSTER].firewall                the firewall grant given to CLUSTER's
#                                                 commands; the source "caller" means the
#                                                 request's observed source address.
#   acl.clusters[CLUSTER].limits                  overrides acl.limits, key by key.
#   acl.clusters[CLUSTER].max_args                deny requests with more arguments.
#   acl.clusters[CLUSTER].salt                    the salt grant given to CLUSTER's commands:
#                                                 {"states": [STATE, ...], "pillar_keys": [KEY, ...]};
#                                                 a STATE may be "PREFIX.*" or "*", and pillar
#                                                 data may only use the listed top-level keys.
#   acl.clusters[CLUSTER].users                   the users grant of CLUSTER's commands:
#     .self      [COMMAND, ...]                   these commands manage the caller's own account
#                                                 (the account named like the client), e.g. key-add;
#     .managers  {GROUP: [ACCOUNT_GROUP, ...]}    for other commands, a client in GROUP may manage
#                                                 the account named by the first argument, if it
#                                                 is a member of one of these account groups
#                                                 (the daemon checks), and use these groups;
#     .protected [ACCOUNT, ...]                   accounts no command may manage. The daemon
#                                                 keeps root and system accounts out anyway.
#     .temporary {GROUP: {"groups": [G, ...],     a client in GROUP may add the accounts it
#                         "max_ttl_s": N}}        manages to these (system) groups, such as
#                                                 sudo, only for a while: at most N seconds
#                                                 (default 3600); a permanent membership of
#                                                 them is refused.
#   acl.clusters[CLUSTER].exec.programs           the declared programs ([exec.programs.NAME] in
#     {PROGRAM: {PARAM: [VALUE, ...]}}            sesamed.toml) CLUSTER's commands may run. A
#                                                 request is granted only the program named like
#                                                 its command (the stock exec module runs that
#                                                 one), each PARAM narrowed to the VALUEs listed
#                                                 (for a path parameter: paths at or below them);
#                                                 {} allows what the declaration allows.
#   acl.clusters[CLUSTER].hostkeys               {"list": true}: CLUSTER's commands may read the
#                                                 host's SSH host public keys (the stock
#                                                 known-hosts module, for `sesame known-hosts`).
#   acl.clusters[CLUSTER].approvals               {"count": N, "groups": [GROUP, ...], "ttl_s": S}:
#                                                 CLUSTER's requests wait until N other clients
#                                                 in GROUP approve them, for S seconds at most.
#   acl.clusters[CLUSTER].reason                  {"required": true}: CLUSTER's requests must say
#                                                 why (`sesame run --reason TEXT`);
#                                                 {"pattern": REGEX, "example": TEXT}: and the
#                                                 reason must match REGEX (a ticket id, say).
#   acl.limits                                    the limits of every command.
#   acl.mask       {"CLUSTER::COMMAND": [N, ...]} argument positions (0-based) the daemon masks
#                                                 in its logs (data.sesame.mask).
#
# Tests live in sesame_test.rego; run them with `sesamed policy test policies/`.
package sesame

# The decision sesamed reads. Exactly one branch applies: allowed, or denied
# with the reasons why.
decision := object.union(
	{
		"allow": true,
		"reasons": sort(allow_reasons),
		"grant": grant,
		"limits": limits,
	},
	approvals,
) if {
	allow
} else := {
	"allow": false,
	"reasons": sort(deny_reasons),
}

# A request is allowed when some group of the client grants it and nothing denies it.
allow if {
	count(granting_groups) > 0
	count(deny_reasons) == 0
}

# "basic::echo": how reasons name a request.
request_name := sprintf("%s::%s", [input.request.cluster, input.request.command])

# The client's groups that grant the request's cluster and command.
granting_groups contains group if {
	some group in input.client.groups
	some cluster, commands in data.acl.groups[group]
	matches(cluster, input.request.cluster)
	some command in commands
	matches(command, input.request.command)
}

# The daemon's own approvals commands (sesame pending|approve|reject|result): every
# client in a group may use them. The daemon then checks each parked request's own
# rule (who may approve it, never its requester) and shows a requester only its own
# results.
granting_groups contains group if {
	input.request.cluster == "approvals"
	some group in input.client.groups
}

# A pattern from data.acl matches a name when equal, or when it is "*".
matches(pattern, _) if pattern == "*"

matches(pattern, name) if pattern == name

allow_reasons contains reason if {
	some group in granting_groups
	reason := sprintf("group %s may run %s", [group, request_name])
}

# Why a request is denied. Every rule adds one sentence; any sentence denies.
deny_reasons contains reason if {
	count(input.client.groups) == 0
	reason := sprintf("client %s belongs to no group, so may run nothing (asked for %s)", [
		input.client.name,
		request_name,
	])
}

deny_reasons contains reason if {
	count(input.client.groups) > 0
	count(granting_groups) == 0
	reason := sprintf("no group of client %s (%s) grants %s", [
		input.client.name,
		concat(", ", input.client.groups),
		request_name,
	])
}

deny_reasons contains reason if {
	max_args := cluster_config.max_args
	count(input.request.args) > max_args
	reason := sprintf("%s takes at most %d arguments; client %s gave %d", [
		request_name,
		max_args,
		input.client.name,
		count(input.request.args),
	])
}

# --- approvals -----------------------------------------------------------------
#
# A cluster with an approvals entry (none in the shipped data) runs nothing until
# other clients approve: {"count": N, "groups": [GROUP, ...], "ttl_s": SECONDS}
# (N other clients, each in one of the groups, within ttl_s, default 900). The
# daemon parks the request; see the README's "Two-person approval".
approvals := {"approvals": cluster_config.approvals} if {
	cluster_config.approvals
} else := {}

# --- reasons -------------------------------------------------------------------
#
# A cluster with a reason entry (e.g. "accounts", "config") runs nothing without
# a reason from the client, and, when the entry has a pattern, nothing whose
# reason does not match it. The denial says what is missing and shows an example.
reason_config := object.get(cluster_config, "reason", {})

reason_required if reason_config.required == true

reason_required if reason_config.pattern

default reason_example := "INC-1234: why this is needed"

reason_example := reason_config.example

deny_reasons contains reason if {
	reason_required
	not input.request.reason
	reason := sprintf("%s needs a reason: say why with --reason (e.g. sesame run --reason %s ...)", [
		request_name,
		json.marshal(reason_example),
	])
}

deny_reasons contains reason if {
	pattern := reason_config.pattern
	not regex.match(pattern, input.request.reason)
	reason := sprintf("%s needs a reason matching %s (e.g. --reason %s); got %s", [
		request_name,
		pattern,
		json.marshal(reason_example),
		json.marshal(input.request.reason),
	])
}

# The settings of the request's cluster ({} for a cluster with no entry).
cluster_config := object.get(data.acl, ["clusters", input.request.cluster], {})

# Site-wide limits, overridden key by key by the cluster's own.
limits := object.union(
	object.get(data.acl, "limits", {}),
	object.get(cluster_config, "limits", {}),
)

# The grant: the union of what the request's cluster is configured to give.
# A cluster with no firewall, salt, users, exec or hostkeys entry grants none of them ({}).
grant := object.union_n([firewall_grant, salt_grant, users_grant, exec_grant, hostkeys_grant])

# Firewall openings: only clusters with a firewall entry (e.g. "access") may open ports.
firewall_grant := {"firewall": cluster_config.firewall} if {
	cluster_config.firewall
} else := {}

# Salt states: only clusters with a salt entry (e.g. "config") may apply states.
salt_grant := {"salt": cluster_config.salt} if {
	cluster_config.salt
} else := {}

# The host's SSH host public keys: only clusters with a hostkeys entry (e.g. "access", whose
# known-hosts command prints them for ssh's KnownHostsCommand) may read them. Read-only.
hostkeys_grant := {"hostkeys": cluster_config.hostkeys} if {
	cluster_config.hostkeys
} else := {}

# Declared programs: only clusters with an exec entry (e.g. "ops") may run them, and a
# request is granted the one program named like its command, narrowed as data says.
exec_grant := {"exec": {"programs": {input.request.command: narrowing}}} if {
	narrowing := cluster_config.exec.programs[input.request.command]
} else := {}

# --- accounts ------------------------------------------------------------------
#
# The users grant says which accounts a command may manage. Two ways to get one:
#
#   self service: a command listed in users.self manages the caller's own
#                 account only. The grant is {"self": true}: the daemon resolves
#                 it to the account named like the client, and refuses it when
#                 that is a system account (a client enrolled as "daemon").
#   managers:     any other command manages the account named by its first
#                 argument, in the account groups users.managers maps the
#                 client's groups to. The daemon changes an existing account only
#                 when it is a member of one of those groups, and never a system
#                 account or group: this policy grants no system_accounts or
#                 system_groups.
#
# Only clusters with a users entry (e.g. "accounts") manage accounts. The users
# grant and the two account denials below start with `manages_accounts`, so a
# request to another cluster does not evaluate the account rules at all.
manages_accounts if cluster_config.users

users_config := object.get(cluster_config, "users", {})

users_grant := {"users": {"self": true}} if {
	manages_accounts
	self_service
} else := {"users": object.union(
	{"names": [first_arg], "groups": sort(managed_groups)},
	temporary_grant,
)} if {
	manages_accounts
	count(managed_groups) > 0
} else := {}

# Groups the client's groups may add accounts to only for a while (users.temporary:
# {GROUP: {"groups": [G, ...], "max_ttl_s": N}}): privileged groups such as sudo, which
# a membership must never outlive its reason. Only for group-add: the daemon refuses
# a permanent membership of these, and any ttl past max_ttl_s (default an hour) or the
# host's [users] max_ttl_s. They are system groups, so they are named in system_groups
# (which also lets group-add reach their members); no other command gets them.
temporary_groups contains temporary_group if {
	not self_service
	input.request.command == "group-add"
	some group in input.client.groups
	some temporary_group in object.get(users_config, ["temporary", group, "groups"], [])
}

# The shortest max_ttl_s among the client's groups that give temporary groups.
temporary_ttl := min({ttl |
	some group in input.client.groups
	object.get(users_config, ["temporary", group, "groups"], []) != []
	ttl := object.get(users_config, ["temporary", group, "max_ttl_s"], 3600)
})

temporary_grant := {
	"system_groups": sort(temporary_groups),
	"temporary_groups": sort(temporary_groups),
	"max_ttl_s": temporary_ttl,
} if {
	count(temporary_groups) > 0
} else := {}

self_service if input.request.command in object.get(users_config, "self", [])

# Account groups the client's groups may manage.
managed_groups contains account_group if {
	not self_service
	some group in input.client.groups
	some account_group in object.get(users_config, ["managers", group], [])
}

# The account a request manages: the caller's own, or the first argument.
managed_account := input.client.name if self_service

managed_account := first_arg if {
	not self_service
	count(managed_groups) > 0
}

# The request's first argument; "" when it has none.
default first_arg := ""

first_arg := input.request.args[0]

# A Unix account name: lower case, starts with a letter or '_', at most 32 characters.
valid_account(name) if regex.match(`^[a-z_][a-z0-9_-]{0,31}$`, name)

deny_reasons contains reason if {
	manages_accounts
	managed_account in object.get(users_config, "protected", [])
	reason := sprintf("account %s is protected: %s may not manage it", [managed_account, request_name])
}

deny_reasons contains reason if {
	manages_accounts
	count(managed_groups) > 0
	not valid_account(first_arg)
	reason := sprintf("%s needs a valid account name as its first argument (got %s)", [
		request_name,
		json.marshal(input.request.args),
	])
}

# --- log masking -----------------------------------------------------------------

# Argument positions (0-based) whose values the daemon masks in its audit and
# decision logs, per "CLUSTER::COMMAND", e.g. {"accounts::user-add": [1]}.
# Read by sesamed as data.sesame.mask; {} when data.acl.mask is absent.
mask := object.get(data.acl, "mask", {})
