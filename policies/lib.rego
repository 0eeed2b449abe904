# Shared facts of the built-in policies: who holds which role, however it is granted.
#
# Not a rule package (it is outside `cabgate.rules.`), so it yields no findings itself; the
# lockdown and rollout packages import it. User policies may import it too.
package cabgate.lib

# The principals `lockdown.allow` names (`user:…`, `serviceAccount:…`, `group:…`).
allowed contains principal if some principal in input.spec.lockdown.allow

# Every principal outside `lockdown.allow` that holds one of `roles` (a map role → anything), as a
# set of `{principal, role, resource, via}`. Workspace bindings count everywhere; project bindings
# count in governed projects. Bindings whose condition is expired at `input.now` are dropped;
# `resource.*` conditions do not narrow a grant, so those bindings are kept. Groups are expanded
# unless the group itself is allowed. Allowed principals are left out as early as possible: in a
# compliant workspace almost every holder is allowed, and the set stays small.
#
# A function, not a rule: importing this package must stay cheap, and each caller computes the
# holders it needs once (`holders := lib.holders_of(…)`), in one linear pass over the bindings.
holders_of(roles) := workspace_holders(roles) | project_holders(roles) if {
	count(roles) > 0
} else := set()

workspace_holders(roles) := {holder |
	workspace := input.live.workspace
	some binding in input.live.workspaceIamPolicy.bindings
	roles[binding.role]
	condition := input.index.conditions[expression(binding)]
	not condition.expired
	place := concat("", [workspace, ":getIamPolicy"])
	some member in binding.members
	not allowed[member]
	some holder in expand(member, binding.role, workspace, place, condition)
}

project_holders(roles) := {holder |
	some project in input.live.projects
	input.index.governedProjects[project.name]
	some binding in project.iamPolicy.bindings
	roles[binding.role]
	condition := input.index.conditions[expression(binding)]
	not condition.expired
	place := concat("", [project.name, ":getIamPolicy"])
	some member in binding.members
	not allowed[member]
	some holder in expand(member, binding.role, project.name, place, condition)
}

# The condition text of a binding; "" when it has none.
expression(binding) := binding.condition.expression if {
	is_string(binding.condition.expression)
} else := ""

# The holders behind one member of a binding: the members of a known group, or the member.
expand(member, role, resource, place, condition) := {h |
	some principal in input.index.groups[member]
	not allowed[principal]
	h := holder_of(principal, role, resource, [role, place, member], condition)
} if {
	startswith(member, "group:")
	input.index.groups[member]
} else := {holder_of(member, role, resource, [role, place], condition)}

holder_of(principal, role, resource, via, condition) := {
	"principal": principal,
	"role": role,
	"resource": resource,
	"via": array.concat(via, condition_note(condition)),
}

condition_note(condition) := [concat(" ", ["condition", condition.error])] if {
	is_string(condition.error)
} else := []

# "on" / "off" for a boolean setting in a message.
on_off(true) := "on"

on_off(false) := "off"
