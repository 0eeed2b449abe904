# Environments and their rollout policies (`cabgate check`).
package cabgate.rules.rollout

import data.cabgate.lib

holders := lib.holders_of(input.index.rolloutRoles)

env_name(id) := concat("", ["environments/", id])

env_path(id, rest) := concat("", ["/environments/", id, rest])

findings contains f if {
	is_object(input.live)
	some id, _ in input.spec.environments
	not input.index.environments[id]
	f := {
		"code": "rollout/missing-environment",
		"message": concat("", ["environment ", id, " of the spec does not exist in Bytebase"]),
		"resource": env_name(id),
		"path": env_path(id, ""),
	}
}

findings contains f if {
	some id, env in input.spec.environments
	live := input.index.environments[id]
	want := object.get(env, ["rollout", "automatic"], false)
	live.automatic != want
	f := {
		"code": "rollout/automatic",
		"message": concat("", [
			live.name, " rolls out automatically: ", lib.on_off(live.automatic),
			"; the spec says ", lib.on_off(want),
		]),
		"resource": live.name,
		"path": env_path(id, "/rollout/automatic"),
	}
}

findings contains f if {
	some id, env in input.spec.environments
	live := input.index.environments[id]
	want := object.get(env, ["rollout", "roles"], [])
	{r | some r in live.roles} != {r | some r in want}
	f := {
		"code": "rollout/roles",
		"message": concat("", [
			live.name, " lets [", concat(", ", live.roles), "] run tasks; the spec says [",
			concat(", ", want), "]",
		]),
		"resource": live.name,
		"path": env_path(id, "/rollout/roles"),
	}
}

# Holders of a governed environment's rollout roles run tasks there: they must be allowed. The
# message names where the role is bound (the project whose tasks they run, or the workspace), so
# a baseline that accepts one binding does not accept the same role granted in another project.
findings contains f if {
	some h in holders
	some id in input.index.rolloutRoles[h.role]
	f := {
		"code": "rollout/roles",
		"message": concat("", [
			h.principal, " can run tasks in ", env_name(id), " through its rollout policy role ",
			h.role, ", bound in ", h.resource, ", but is not in lockdown.allow",
		]),
		"resource": env_name(id),
		"via": h.via,
		"path": env_path(id, "/rollout/roles"),
	}
}

findings contains f if {
	some id, live in input.index.environments
	not input.index.specEnvironments[id]
	f := {
		"code": "rollout/undeclared-environment",
		"message": concat("", [live.name, " is in Bytebase but not in the spec's environments"]),
		"resource": live.name,
		"path": "/environments",
	}
}
