# Example: a ticket id on every change.
#
# Members of a group may run what data.acl.groups grants them (GROUP ->
# ["CLUSTER::COMMAND", ...]). Requests to a cluster in data.acl.ticketed_clusters
# must also carry a reason (`sesame run --reason "OPS-1234 ..."`) that starts
# with a ticket id matching data.acl.ticket_pattern; the ticket id leads the
# decision's reason, so the audit and decision logs file each change under its
# ticket. A request without one is denied, saying what is missing and how to
# give it.
#
# Test: sesamed policy test policies/examples/ticket-id
package sesame

request_name := sprintf("%s::%s", [input.request.cluster, input.request.command])

granting_groups contains group if {
	some group in input.client.groups
	request_name in object.get(data.acl.groups, group, [])
}

ticketed if input.request.cluster in data.acl.ticketed_clusters

# The ticket id the reason starts with; undefined when there is none.
ticket := id if {
	ids := regex.find_n(data.acl.ticket_pattern, input.request.reason, 1)
	id := ids[0]
	startswith(input.request.reason, id)
}

deny_reasons contains reason if {
	count(granting_groups) == 0
	reason := sprintf("no group of %s grants %s", [input.client.name, request_name])
}

deny_reasons contains reason if {
	ticketed
	not input.request.reason
	reason := sprintf("%s changes the host, so it needs a ticket: sesame run --reason \"%s why\" ...", [
		request_name,
		data.acl.ticket_example,
	])
}

deny_reasons contains reason if {
	ticketed
	input.request.reason
	not ticket
	reason := sprintf("%s needs a reason that starts with a ticket id like %s; got %s", [
		request_name,
		data.acl.ticket_example,
		json.marshal(input.request.reason),
	])
}

allow_reason := sprintf("%s: %s runs %s", [ticket, input.client.name, request_name]) if {
	ticketed
} else := sprintf("%s runs %s", [input.client.name, request_name])

decision := {"allow": true, "reasons": [allow_reason]} if {
	count(deny_reasons) == 0
} else := {"allow": false, "reasons": sort(deny_reasons)}
