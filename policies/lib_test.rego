package cabgate.lib_test

import data.cabgate.lib

live := {
	"workspace": "workspaces/acme",
	"workspaceIamPolicy": {"bindings": [
		{"role": "roles/workspaceAdmin", "members": ["group:dba@acme.example"], "condition": {"expression": ""}},
		{"role": "roles/workspaceAdmin", "members": ["user:old@acme.example"], "condition": {"expression": "expired"}},
	]},
	"projects": [
		{"name": "projects/pay", "iamPolicy": {"bindings": [
			{"role": "roles/projectOwner", "members": ["user:owner@acme.example"], "condition": {"expression": ""}},
		]}},
		{"name": "projects/free", "iamPolicy": {"bindings": [
			{"role": "roles/projectOwner", "members": ["user:free@acme.example"], "condition": {"expression": ""}},
		]}},
	],
}

index := {
	"permissionRoles": {"roles/workspaceAdmin": true, "roles/projectOwner": true},
	"rolloutRoles": {},
	"governedProjects": {"projects/pay": true},
	"groups": {"group:dba@acme.example": ["user:dba1@acme.example", "serviceAccount:bot@service.bytebase.com"]},
	"conditions": {"": {"expired": false, "residual": false}, "expired": {"expired": true, "residual": false}},
}

# The input is bound to a variable before `with`: regorus 0.14 leaves a function call undefined
# when the `with` value refers to rules of the test package inline.
input_allowing(allow) := {"live": live, "index": index, "spec": {"lockdown": {"allow": allow}}}

test_groups_are_expanded_with_the_group_in_via if {
	inp := input_allowing([])
	holders := lib.holders_of(index.permissionRoles) with input as inp
	some h in holders
	h.principal == "user:dba1@acme.example"
	h.via == ["roles/workspaceAdmin", "workspaces/acme:getIamPolicy", "group:dba@acme.example"]
}

test_an_allowed_group_is_not_expanded if {
	inp := input_allowing(["group:dba@acme.example"])
	holders := lib.holders_of(index.permissionRoles) with input as inp
	principals := {x.principal | some x in holders}
	not "group:dba@acme.example" in principals
	not "user:dba1@acme.example" in principals
	"user:owner@acme.example" in principals
}

test_allowed_principals_are_left_out if {
	inp := input_allowing(["serviceAccount:bot@service.bytebase.com"])
	holders := lib.holders_of(index.permissionRoles) with input as inp
	principals := {x.principal | some x in holders}
	principals == {"user:dba1@acme.example", "user:owner@acme.example"}
}

test_expired_bindings_and_ungoverned_projects_do_not_count if {
	inp := input_allowing([])
	holders := lib.holders_of(index.permissionRoles) with input as inp
	principals := {h.principal | some h in holders}
	not "user:old@acme.example" in principals
	not "user:free@acme.example" in principals
	"user:owner@acme.example" in principals
}
