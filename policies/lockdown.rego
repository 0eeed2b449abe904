# Who can run tasks (`cabgate check`): every holder of `lockdown.permission`, through any role,
# binding or group, must be in `lockdown.allow`; governed projects must require approval and
# forbid self-approval; and every entry of `bytebase.projects` must name some project, since a
# typo there quietly governs nothing (the index lists the entries that match none).
#
# NOTE: `allUsers` on the workspace policy is reported even though Bytebase Cloud (SaaS) ignores
# it there; the snapshot does not say whether the workspace is self-hosted.
package cabgate.rules.lockdown

import data.cabgate.lib

holders := lib.holders_of(input.index.permissionRoles)

findings contains f if {
	some h in holders
	h.principal != "allUsers"
	f := {
		"code": "lockdown/unexpected-holder",
		"message": concat("", [
			h.principal, " holds ", input.spec.lockdown.permission, " through ", h.role,
			" and can run tasks in every environment, approved or not",
		]),
		"resource": h.resource,
		"via": h.via,
		"path": "/lockdown/allow",
	}
}

findings contains f if {
	some h in holders
	h.principal == "allUsers"
	f := {
		"code": "lockdown/all-users",
		"message": concat("", [
			"allUsers is bound to ", h.role, ", which carries ", input.spec.lockdown.permission,
			": every user can run tasks",
		]),
		"resource": h.resource,
		"via": h.via,
		"path": "/lockdown/allow",
	}
}

findings contains f if {
	some project in input.live.projects
	input.index.governedProjects[project.name]
	some setting in ["requireIssueApproval", "allowSelfApproval"]
	want := input.spec.lockdown.projectSettings[setting]
	have := object.get(project, setting, false)
	have != want
	f := {
		"code": "lockdown/project-setting",
		"message": concat("", [
			project.name, " has ", setting, " ", lib.on_off(have), "; the spec requires it ",
			lib.on_off(want),
		]),
		"resource": project.name,
		"path": concat("", ["/lockdown/projectSettings/", setting]),
		"remediation": concat("", ["set ", setting, " to ", lib.on_off(want), " in the project's settings"]),
	}
}

findings contains f if {
	some entry in input.index.unmatchedProjectPatterns
	f := {
		"code": "lockdown/missing-project",
		"message": concat("", [
			"bytebase.projects entry ", entry.pattern,
			" matches no project in Bytebase: it governs nothing",
		]),
		"resource": concat("", ["projects/", trim_prefix(entry.pattern, "projects/")]),
		"path": entry.path,
	}
}
