package cabgate.rules.rollout_test

import data.cabgate.rules.rollout

spec_doc := {
	"lockdown": {"allow": ["serviceAccount:bridge@service.bytebase.com"]},
	"environments": {"prod": {"governed": true, "rollout": {"automatic": false, "roles": []}}},
}

index(envs, rollout_roles) := {
	"environments": envs,
	"specEnvironments": {"prod": true},
	"permissionRoles": {},
	"rolloutRoles": rollout_roles,
	"governedProjects": {},
	"grants": {"roles/releaser": [{
		"principal": "user:rel@acme.example", "member": "user:rel@acme.example", "role": "roles/releaser",
		"resource": "workspaces/w", "via": ["roles/releaser", "workspaces/w:getIamPolicy"],
	}]},
}

live := {"workspace": "workspaces/w"}

codes(envs, roles) := {f.code | fs := rollout.findings with input as {"spec": spec_doc, "live": live, "index": index(envs, roles)}; some f in fs}

prod(automatic, roles) := {"prod": {"name": "environments/prod", "automatic": automatic, "roles": roles}}

test_a_matching_environment_is_clean if {
	codes(prod(false, []), {}) == set()
}

test_a_missing_environment_is_reported if {
	codes({}, {}) == {"rollout/missing-environment"}
}

test_automatic_rollout_is_reported if {
	codes(prod(true, []), {}) == {"rollout/automatic"}
}

test_rollout_roles_and_their_holders_are_reported if {
	findings := rollout.findings with input as {"spec": spec_doc, "live": live, "index": index(prod(false, ["roles/releaser"]), {"roles/releaser": ["prod"]})}
	count({f | some f in findings; f.code == "rollout/roles"}) == 2
	some f in findings
	f.via == ["roles/releaser", "workspaces/w:getIamPolicy"]
}

test_an_undeclared_environment_is_a_warning_code if {
	envs := object.union(prod(false, []), {"dev": {"name": "environments/dev", "automatic": true, "roles": []}})
	codes(envs, {}) == {"rollout/undeclared-environment"}
}
