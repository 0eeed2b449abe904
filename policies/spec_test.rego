package cabgate.rules.spec_test

import data.cabgate.rules.spec

base := {
	"bytebase": {"serviceAccount": "bridge@service.bytebase.com"},
	"lockdown": {"allow": ["serviceAccount:bridge@service.bytebase.com"]},
	"environments": {"prod": {"governed": true, "rollout": {"automatic": false, "roles": []}}},
}

codes(spec_doc, idx) := {f.code | fs := spec.findings with input as {"spec": spec_doc, "index": idx}; some f in fs}

strings(list) := {"strings": list}

test_a_clean_spec_has_no_findings if {
	count(codes(base, strings([{"path": "/bytebase/serviceKeyEnv", "key": "serviceKeyEnv", "value": "CABGATE_BYTEBASE_KEY", "entropy": 3.5}]))) == 0
}

test_a_service_key_is_a_secret if {
	"spec/secret-inline" in codes(base, strings([{"path": "/name", "key": "name", "value": "bbs_abcdefghij0123456789", "entropy": 3}]))
}

test_a_service_key_pasted_into_an_env_field_is_a_secret if {
	"spec/secret-inline" in codes(base, strings([{"path": "/bytebase/serviceKeyEnv", "key": "serviceKeyEnv", "value": "bbs_AbCdEf0123456789SECRETxyz", "entropy": 4.2}]))
}

test_credentials_in_a_url_are_a_secret if {
	"spec/secret-inline" in codes(base, strings([{"path": "/state/url", "key": "url", "value": "postgres://cab:hunter2@db/cab", "entropy": 3}]))
}

test_a_password_in_a_template_is_a_secret if {
	"spec/secret-inline" in codes(base, strings([{"path": "/workflow/change/description", "key": "description", "value": "password: hunter2", "entropy": 3}]))
}

test_env_names_are_never_secrets if {
	count(codes(base, strings([{"path": "/x/tokenEnv", "key": "tokenEnv", "value": "A1B2C3D4E5F6G7H8I9J0K1L2M3N4", "entropy": 4.5}]))) == 0
}

test_a_random_token_is_a_secret if {
	"spec/secret-inline" in codes(base, strings([{"path": "/name", "key": "name", "value": "q8Zr2LxW9vT4nB7mK1pS6dF3hJ0", "entropy": 4.7}]))
}

test_the_bridge_must_be_allowed if {
	doc := object.union(base, {"lockdown": {"allow": []}})
	"spec/inconsistent" in codes(doc, strings([]))
}

test_a_governed_environment_must_not_roll_out_automatically if {
	doc := object.union(base, {"environments": {"prod": {"rollout": {"automatic": true}}}})
	fs := spec.findings with input as {"spec": doc, "index": strings([])}
	some f in fs
	f.path == "/environments/prod/rollout/automatic"
}
