package cabgate.lib_test

import data.cabgate.lib

# Grants as the index computes them (src/policy/index.rs, where expansion and expiry are tested):
# a group expanded into two principals, a direct project grant and a grant of another role.
grant(principal, member, role, resource, via) := {
	"principal": principal, "member": member, "role": role, "resource": resource, "via": via,
}

dba_via := ["roles/workspaceAdmin", "workspaces/acme:getIamPolicy", "group:dba@acme.example"]

index := {
	"permissionRoles": {"roles/workspaceAdmin": true, "roles/projectOwner": true},
	"grants": {
		"roles/workspaceAdmin": [
			grant("user:dba1@acme.example", "group:dba@acme.example", "roles/workspaceAdmin", "workspaces/acme", dba_via),
			grant("serviceAccount:bot@service.bytebase.com", "group:dba@acme.example", "roles/workspaceAdmin", "workspaces/acme", dba_via),
		],
		"roles/projectOwner": [grant(
			"user:owner@acme.example", "user:owner@acme.example", "roles/projectOwner", "projects/pay",
			["roles/projectOwner", "projects/pay:getIamPolicy"],
		)],
		"roles/viewer": [grant(
			"user:viewer@acme.example", "user:viewer@acme.example", "roles/viewer", "projects/pay",
			["roles/viewer", "projects/pay:getIamPolicy"],
		)],
	},
}

# The input is bound to a variable before `with`: regorus 0.14 leaves a function call undefined
# when the `with` value refers to rules of the test package inline.
input_allowing(allow) := {"index": index, "spec": {"lockdown": {"allow": allow}}}

principals(allow) := {h.principal | inp := input_allowing(allow); some h in lib.holders_of(index.permissionRoles) with input as inp}

test_group_members_keep_the_group_in_via if {
	inp := input_allowing([])
	holders := lib.holders_of(index.permissionRoles) with input as inp
	some h in holders
	h.principal == "user:dba1@acme.example"
	h.via == dba_via
}

test_an_allowed_group_drops_all_its_members if {
	principals(["group:dba@acme.example"]) == {"user:owner@acme.example"}
}

test_allowed_principals_are_left_out if {
	principals(["serviceAccount:bot@service.bytebase.com"]) == {"user:dba1@acme.example", "user:owner@acme.example"}
}

test_only_the_roles_asked_about_count if {
	not "user:viewer@acme.example" in principals([])
	count(principals([])) == 3
}
