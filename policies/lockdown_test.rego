package cabgate.rules.lockdown_test

import data.cabgate.rules.lockdown

spec_doc := {"lockdown": {
	"permission": "bb.taskRuns.create",
	"allow": ["serviceAccount:bridge@service.bytebase.com"],
	"projectSettings": {"requireIssueApproval": true, "allowSelfApproval": false},
}}

live(project) := {"workspace": "workspaces/w", "projects": [project]}

# The index's grants of roles/workspaceAdmin to `members` on the workspace.
index(members) := {
	"permissionRoles": {"roles/workspaceAdmin": true},
	"rolloutRoles": {},
	"governedProjects": {"projects/pay": true},
	"grants": {"roles/workspaceAdmin": [g |
		some m in members
		g := {
			"principal": m, "member": m, "role": "roles/workspaceAdmin", "resource": "workspaces/w",
			"via": ["roles/workspaceAdmin", "workspaces/w:getIamPolicy"],
		}
	]},
}

project := {"name": "projects/pay", "requireIssueApproval": true, "allowSelfApproval": false, "iamPolicy": {"bindings": []}}

findings(members, p) := fs if {
	fs := lockdown.findings with input as {"spec": spec_doc, "live": live(p), "index": index(members)}
}

test_an_allowed_holder_is_fine if {
	count(findings(["serviceAccount:bridge@service.bytebase.com"], project)) == 0
}

test_another_holder_is_reported_with_its_binding if {
	some f in findings(["user:dev@acme.example"], project)
	f.code == "lockdown/unexpected-holder"
	f.resource == "workspaces/w"
	f.via == ["roles/workspaceAdmin", "workspaces/w:getIamPolicy"]
}

test_all_users_is_its_own_code if {
	{f.code | some f in findings(["allUsers"], project)} == {"lockdown/all-users"}
}

test_project_settings_are_compared if {
	p := object.union(project, {"requireIssueApproval": false})
	some f in findings([], p)
	f.code == "lockdown/project-setting"
	f.path == "/lockdown/projectSettings/requireIssueApproval"
}

test_a_project_pattern_that_matches_nothing_is_a_warning_at_its_entry if {
	idx := object.union(index([]), {"unmatchedProjectPatterns": [
		{"pattern": "paymnets", "path": "/bytebase/projects/1"},
	]})
	fs := lockdown.findings with input as {"spec": spec_doc, "live": live(project), "index": idx}
	some f in fs
	f.code == "lockdown/missing-project"
	f.resource == "projects/paymnets"
	f.path == "/bytebase/projects/1"
	contains(f.message, "paymnets")
}

test_every_pattern_matching_a_project_is_quiet if {
	fs := findings([], project)
	every f in fs {
		f.code != "lockdown/missing-project"
	}
}
