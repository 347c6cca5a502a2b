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
#       "users":    {"names": ["alice"], "groups": ["ops"]}
#     },
#     "limits":  {"timeout_ms": 5000, "memory_mb": 64, "output_kb": 64}
#   }
#
# The daemon fails closed: if `decision` is undefined, raises an error, has a key
# it does not know or a value of the wrong type, the request is denied. Anything
# the grant leaves out is not granted; a limit left out takes the daemon default.
#
# The input document (built by sesamed for each authenticated request):
#
#   input.client   {name, key, groups}       the enrolled client (clients.toml)
#   input.request  {id, cluster, command, args, transport: "quic"|"sqs", source_ip}
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
#   acl.limits                                    the limits of every command.
#
# Tests live in sesame_test.rego; run them with `sesamed policy test policies/`.
package sesame

# The decision sesamed reads. Exactly one branch applies: allowed, or denied
# with the reasons why.
decision := {
	"allow": true,
	"reasons": sort(allow_reasons),
	"grant": grant,
	"limits": limits,
} if {
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

# The settings of the request's cluster ({} for a cluster with no entry).
cluster_config := object.get(data.acl, ["clusters", input.request.cluster], {})

# Site-wide limits, overridden key by key by the cluster's own.
limits := object.union(
	object.get(data.acl, "limits", {}),
	object.get(cluster_config, "limits", {}),
)

# The grant: only clusters configured with a firewall entry may open ports.
# Salt states and user management are not granted by this policy; a site adds
# e.g. `"salt": {"states": [...]}` here (or in data) for the clusters that need it.
grant := {"firewall": cluster_config.firewall} if {
	cluster_config.firewall
} else := {}
