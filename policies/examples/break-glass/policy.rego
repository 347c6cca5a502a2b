# Example: break-glass access.
#
# Members of data.acl.break_glass_groups may run any command, but every reason
# of their decisions starts with "BREAK-GLASS", so the audit and decision logs
# make emergency access stand out (alert on it). Everyone else gets what
# data.acl.groups grants (GROUP -> ["CLUSTER::COMMAND", ...]).
#
# Test: sesamed policy test policies/examples/break-glass
package sesame

request_name := sprintf("%s::%s", [input.request.cluster, input.request.command])

break_glass_groups contains group if {
	some group in input.client.groups
	group in data.acl.break_glass_groups
}

granting_groups contains group if {
	some group in input.client.groups
	request_name in object.get(data.acl.groups, group, [])
}

decision := {
	"allow": true,
	"reasons": [sprintf("BREAK-GLASS: %s (group %s) runs %s", [input.client.name, group, request_name]) |
		some group in break_glass_groups
	],
} if {
	count(break_glass_groups) > 0
} else := {
	"allow": true,
	"reasons": [sprintf("group %s may run %s", [group, request_name]) | some group in granting_groups],
} if {
	count(granting_groups) > 0
} else := {
	"allow": false,
	"reasons": [sprintf("no group of %s grants %s", [input.client.name, request_name])],
}
