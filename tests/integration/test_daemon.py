"""`nodewarden-agent run` as the node's systemd service, with a config the test writes."""

import re

from agent_helpers import (AGENT_UNIT, LAST_APPLIED, STATE_FILE, agent_journal, apply,
                           assert_files_hold, diagnostic_pattern, position_of, state_yaml,
                           status_text, unit_properties, wait_for, write_agent_config,
                           write_state)

APP_CONF = {"path": "/srv/app/app.conf", "mode": "0640", "content": "level = 3\n"}
WORKER = "worker.service"
WORKER_UNIT = {"name": WORKER, "state": "running",
               "content": "[Service]\nExecStart=/bin/sleep infinity\n"}
# Longer than any test: only the event under test can make the agent converge.
NEVER = "1h"
CHECKED = r"\d\d:\d\d:\d\d"


def good_state(*extra_files: dict) -> str:
    return state_yaml(files=[APP_CONF, *extra_files], units=[WORKER_UNIT])


def invalid_state() -> tuple[str, str]:
    """A state whose second file has a bad mode, and the diagnostic's FILE:LINE:COLUMN: FIELD."""
    text = state_yaml(files=[{"path": "/srv/app/never.conf", "content": "never\n"},
                             {"path": "/srv/app/bad.conf", "mode": "0999", "content": "x\n"}],
                      units=[WORKER_UNIT])
    line, column = position_of(text, '"0999"')
    return text, f"{STATE_FILE}:{line}:{column}: files[1].mode"


def start_agent(node, state: str, **config: str) -> None:
    """Writes the state and agent.yaml, then starts the agent; returns once it is ready."""
    write_state(node, state, config.get("stateFile", STATE_FILE))
    write_agent_config(node, **config)
    node.systemctl("start", AGENT_UNIT)
    assert node.unit_property(AGENT_UNIT, "ActiveState") == "active"


def wait_for_file(node, path: str, what: str, timeout: float = 10) -> None:
    wait_for(lambda: node.exists(path), timeout, f"{path} to appear ({what})")


def wait_for_status(node, pattern: str, timeout: float = 10) -> str:
    return wait_for(lambda: re.search(pattern, status_text(node)) and status_text(node), timeout,
                    f"StatusText to match {pattern!r}; it is {status_text(node)!r}")


# --- 9 ---------------------------------------------------------------------------------

def test_start_returns_once_the_state_is_applied(agent_node):
    """systemctl start returns once the files are written and the jobs queued.

    The unit that stands for kubelet is ordered after the agent, as a unit that
    needs the node ready would be: the agent must not wait for it to be ready.
    """
    node = agent_node
    slow = {"name": "slow.service", "state": "running",
            "content": "[Unit]\nAfter=nodewarden-agent.service\n"
                       "[Service]\nExecStartPre=/bin/sleep 2\nExecStart=/bin/sleep infinity\n"}
    state = state_yaml(files=[APP_CONF], units=[slow])
    write_state(node, state)
    planned = len(apply(node, STATE_FILE, "--dry-run", expect=2).report["changes"])
    write_agent_config(node, driftCheckInterval=NEVER)

    node.systemctl("start", AGENT_UNIT)

    # Ready once the first converge has written the files and queued its jobs,
    # not once the jobs are done: a managed unit ordered after the agent would
    # otherwise wait for the agent while the agent waits for it.
    assert node.unit_property(AGENT_UNIT, "ActiveState") == "active"
    assert_files_hold(node, [APP_CONF])
    assert unit_properties(node, "slow.service", ("ActiveState",))["ActiveState"] in (
        "activating", "active")
    wait_for(lambda: unit_properties(node, "slow.service", ("ActiveState",))["ActiveState"]
             == "active", 10, "slow.service to finish starting")
    wait_for_status(node, rf"^In desired state, checked {CHECKED}; last drift {CHECKED} "
                          rf"\({planned} changed\)$")
    assert node.read_file(LAST_APPLIED) == state.encode()
    assert node.run(["stat", "-c", "%a %U", LAST_APPLIED]).stdout == "600 root\n"


# --- 10 --------------------------------------------------------------------------------

def test_a_changed_state_file_is_applied(agent_node):
    node = agent_node
    state_file = "/etc/nodewarden/states/node.yaml"
    start_agent(node, good_state(), stateFile=state_file, driftCheckInterval=NEVER)

    # Written in place, as `cat >` or an editor that keeps the inode does...
    in_place = {"path": "/srv/app/in-place.conf", "content": "1\n"}
    node.run(["sh", "-c", f"cat > {state_file}"], input=good_state(in_place))
    wait_for_file(node, in_place["path"], "the state file was rewritten in place")

    # ...and replaced by a rename, as configuration tools do.
    renamed = {"path": "/srv/app/renamed.conf", "content": "2\n"}
    write_state(node, good_state(in_place, renamed), state_file)
    wait_for_file(node, renamed["path"], "the state file was replaced")

    assert_files_hold(node, [APP_CONF, in_place, renamed])
    wait_for(lambda: node.read_file(LAST_APPLIED) == good_state(in_place, renamed).encode(), 10,
             f"{LAST_APPLIED} to hold the new state")


# --- 11 --------------------------------------------------------------------------------

def test_drift_is_repaired_at_the_drift_check_interval(agent_node):
    node = agent_node
    start_agent(node, good_state(), driftCheckInterval="2s")
    worker = unit_properties(node, WORKER)["InvocationID"]

    node.run(["rm", APP_CONF["path"]])
    node.systemctl("stop", WORKER)

    wait_for_file(node, APP_CONF["path"], "the drift check", timeout=10)
    wait_for(lambda: unit_properties(node, WORKER, ("ActiveState",))["ActiveState"] == "active",
             10, f"the drift check to start {WORKER} again")
    assert_files_hold(node, [APP_CONF])
    assert unit_properties(node, WORKER)["InvocationID"] != worker


# --- 12 --------------------------------------------------------------------------------

def test_reload_converges(agent_node):
    node = agent_node
    start_agent(node, good_state(), driftCheckInterval=NEVER)
    main_pid = node.unit_property(AGENT_UNIT, "MainPID")

    node.run(["rm", APP_CONF["path"]])
    node.systemctl("reload", AGENT_UNIT)  # SIGHUP

    wait_for_file(node, APP_CONF["path"], "systemctl reload")
    assert_files_hold(node, [APP_CONF])
    assert node.unit_property(AGENT_UNIT, "MainPID") == main_pid, "reload restarted the agent"


# --- 13 --------------------------------------------------------------------------------

def test_a_rejected_state_leaves_the_last_good_one_in_force(agent_node):
    node = agent_node
    good = good_state()
    start_agent(node, good, driftCheckInterval="2s")
    bad, where = invalid_state()

    write_state(node, bad)

    status = wait_for_status(node, "State rejected")
    assert f"({where}: " in status and "enforcing the last good state" in status, status
    node.run(["rm", APP_CONF["path"]])
    wait_for_file(node, APP_CONF["path"], "the last good state is enforced")
    assert_files_hold(node, [APP_CONF])
    assert not node.exists("/srv/app/never.conf"), "part of the rejected state was applied"
    assert node.read_file(LAST_APPLIED) == good.encode()
    errors = [e["MESSAGE"] for e in agent_journal(node, "--priority=err")]
    assert any(where in message for message in errors), \
        f"no error in the journal names {where}:\n" + "\n".join(errors)


def test_a_state_that_cannot_be_applied_leaves_the_last_good_one_in_force(agent_node):
    """Valid YAML, but an owner the node does not have: nothing of it, and the old still holds."""
    node = agent_node
    good = good_state()
    start_agent(node, good, driftCheckInterval="2s")
    unknown_owner = good_state({"path": "/srv/app/never.conf", "content": "never\n",
                                "owner": "no-such-user"})

    write_state(node, unknown_owner)

    status = wait_for_status(node, "Cannot apply the state")
    assert "user no-such-user does not exist" in status, status
    assert "enforcing the last good state" in status, status
    node.run(["rm", APP_CONF["path"]])
    wait_for_file(node, APP_CONF["path"], "the last good state is enforced")
    assert not node.exists("/srv/app/never.conf"), "part of the refused state was applied"
    assert node.read_file(LAST_APPLIED) == good.encode()


def test_apply_waits_for_the_daemons_converge(agent_node):
    """The daemon and a one-shot apply take turns: apply blocks while the lock is held."""
    node = agent_node
    start_agent(node, good_state(), driftCheckInterval=NEVER)
    # Hold the daemon's lock from a shell, as a converge in progress would.
    holder = "exec flock /var/lib/nodewarden/converge.lock sleep 3"
    node.run(f"systemd-run --unit=lock-holder --collect sh -c '{holder}'")
    wait_for(lambda: node.unit_property("lock-holder.service", "ActiveState") == "active", 10,
             "the lock holder to start")

    result = node.run(["bash", "-c", f"TIMEFORMAT=%R; time nodewarden-agent apply {STATE_FILE}"],
                      check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting for the converge in progress to finish" in result.stderr, result.stderr
    assert float(result.stderr.strip().splitlines()[-1]) >= 1.5, result.stderr


# --- 14 --------------------------------------------------------------------------------

def test_restart_with_an_invalid_state_enforces_the_last_applied(agent_node):
    node = agent_node
    good = good_state()
    start_agent(node, good, driftCheckInterval=NEVER)
    main_pid = node.unit_property(AGENT_UNIT, "MainPID")
    bad, where = invalid_state()
    write_state(node, bad)
    wait_for_status(node, "State rejected")
    node.run(["rm", APP_CONF["path"]])

    node.systemctl("restart", AGENT_UNIT)  # ready once its first converge is done

    assert node.unit_property(AGENT_UNIT, "MainPID") != main_pid
    assert_files_hold(node, [APP_CONF])
    assert not node.exists("/srv/app/never.conf")
    status = status_text(node)
    assert f"({where}: " in status and "enforcing the last good state" in status, status
    assert node.read_file(LAST_APPLIED) == good.encode()


# --- 15 --------------------------------------------------------------------------------

def test_logs_are_structured_journal_entries(agent_node):
    node = agent_node
    start_agent(node, good_state(), driftCheckInterval=NEVER)
    write_state(node, invalid_state()[0])
    wait_for_status(node, "State rejected")

    entries = [e for e in agent_journal(node) if e.get("_COMM", "").startswith("nodewarden")]
    assert entries, "the agent wrote nothing to the journal"
    for entry in entries:
        assert entry.get("_TRANSPORT") == "journal", f"not a structured entry: {entry}"
        assert entry.get("NODEWARDEN_CATEGORY") and entry.get("PRIORITY"), entry
    converged = [e for e in entries if e["MESSAGE"].startswith("Converged in")]
    assert converged and all(e["PRIORITY"] == "6" for e in converged), converged
    assert {e["NODEWARDEN_CATEGORY"] for e in converged} == {"agent"}
    rejected = [e for e in entries if e["MESSAGE"].startswith("State rejected")]
    assert rejected and all(e["PRIORITY"] == "3" for e in rejected), rejected
    pattern = diagnostic_pattern(STATE_FILE)
    assert any(pattern.match(e["MESSAGE"]) and e["PRIORITY"] == "3" for e in entries), \
        "no error entry with FILE:LINE:COLUMN: FIELD: MESSAGE"


def test_journal_entries_point_at_the_code_that_logged_them(agent_node):
    """CODE_FILE/CODE_LINE/CODE_FUNC lead a reader of the journal to the code that logged;
    an entry that names the journal sink itself for every message misleads them."""
    node = agent_node
    start_agent(node, good_state(), driftCheckInterval=NEVER)

    entries = [e for e in agent_journal(node) if "NODEWARDEN_CATEGORY" in e]
    assert entries
    sources = {(e.get("CODE_FILE"), e.get("CODE_LINE"), e.get("CODE_FUNC")) for e in entries}
    wrong = {s for s in sources if s[0] and s[0].endswith("agent/core/log.cpp")}
    assert not wrong, f"entries claim to come from the logging sink: {sorted(wrong)}"


# --- the unit file ---------------------------------------------------------------------

def test_the_unit_runs_the_agent_as_a_notify_service_with_a_watchdog(agent_node):
    """The unit as shipped, loaded by systemd (test_units.py runs systemd-analyze verify
    on it, with the man pages its Documentation= names)."""
    start_agent(agent_node, good_state(), driftCheckInterval=NEVER)
    properties = unit_properties(agent_node, AGENT_UNIT, ("Type", "WatchdogUSec", "Restart",
                                 "StateDirectory", "ConfigurationDirectory"))
    assert properties == {"Type": "notify", "WatchdogUSec": "2min", "Restart": "always",
                          "StateDirectory": "nodewarden", "ConfigurationDirectory": "nodewarden"}
