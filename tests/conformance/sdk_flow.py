"""Drives `runbook simulator serve` with Microsoft's Python SDK for Site Recovery, as a
user's script would: reads (items, providers, recovery plans, jobs; every list paged), then
every long-running operation of the seed's flow through the SDK's own poller (`.result()`),
checking the estate after each step. Runs against tests/conformance/inventory.toml.

    python sdk_flow.py --endpoint http://127.0.0.1:8080 --token runbook-simulator

Exits 0 when every check passed; otherwise prints what failed and exits 1.
"""

import argparse
import re
import sys

from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as m

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
GROUP = "dr-rg"
VAULT = "dr-vault"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SimulatorToken(SansIOHTTPPolicy):
    """Sends the simulator's bearer token. azure-core's bearer-token policy refuses plain
    http; the client's `authentication_policy` option is the supported way to replace it."""

    def __init__(self, token):
        self.token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"


class NoCredential:
    """The client wants a credential; `SimulatorToken` is used instead."""

    def get_token(self, *scopes, **kwargs):
        raise AssertionError("the simulator's token is sent by SimulatorToken")


class Answers:
    """Every answer the client received, for checks on their headers."""

    def __init__(self):
        self.seen = []

    def __call__(self, response):
        r = response.http_response
        self.seen.append((r.request.method, r.request.url, r.status_code, dict(r.headers)))


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def step(text):
    print(f"- {text}", flush=True)


class Flow:
    def __init__(self, endpoint, token):
        self.answers = Answers()
        self.client = SiteRecoveryManagementClient(
            NoCredential(),
            SUBSCRIPTION,
            base_url=endpoint,
            authentication_policy=SimulatorToken(token),
            raw_response_hook=self.answers,
            # Only where an answer says no Retry-After (the server always says one).
            polling_interval=1,
        )
        self.api_version = self.client._config.api_version
        self.paths = {}
        self.ids = {}

    # Reads.

    def items(self):
        return {i.properties.friendly_name: i for i in self.client.replication_protected_items.list(GROUP, VAULT)}

    def item(self, name):
        fabric, container, item = self.paths[name]
        return self.client.replication_protected_items.get(GROUP, VAULT, fabric, container, item)

    def expect(self, name, state, active, allowed=None):
        item = self.item(name)
        p = item.properties
        check(
            (p.protection_state, p.active_location) == (state, active),
            f"{name}: expected {state} on {active}, got {p.protection_state} on {p.active_location}",
        )
        if allowed is not None:
            check(allowed in p.allowed_operations, f"{name}: {allowed} not in {p.allowed_operations}")
        return item

    def jobs(self, **where):
        jobs = list(self.client.replication_jobs.list(GROUP, VAULT, filter="startTime eq '2026-01-01T00:00:00Z'"))
        return [
            j
            for j in jobs
            if all(getattr(j.properties, k) == v for k, v in where.items())
        ]

    def job_of(self, **where):
        found = self.jobs(**where)
        check(len(found) == 1, f"one job with {where}, found {len(found)}")
        return found[0]

    def plan(self, name):
        return self.client.replication_recovery_plans.get(GROUP, VAULT, name)

    def plan_members(self, name):
        plan = self.plan(name)
        boot = [g for g in plan.properties.groups if g.group_type == "Boot"]
        return plan, [[self.ids[m.id.lower()] for m in g.replication_protected_items] for g in boot]

    # Operations on one item.

    def on(self, name):
        fabric, container, item = self.paths[name]
        return (GROUP, VAULT, fabric, container, item)

    def planned(self, name, direction):
        ops = self.client.replication_protected_items
        body = m.PlannedFailoverInput(properties=m.PlannedFailoverInputProperties(failover_direction=direction))
        return ops.begin_planned_failover(*self.on(name), body)

    def commit(self, name):
        return self.client.replication_protected_items.begin_failover_commit(*self.on(name))

    def reprotect(self, name, direction):
        body = m.ReverseReplicationInput(properties=m.ReverseReplicationInputProperties(failover_direction=direction))
        return self.client.replication_protected_items.begin_reprotect(*self.on(name), body)

    # The flow.

    def reads(self):
        step("list and get items (paged), providers, recovery plans, jobs")
        items = self.items()
        check(len(items) == 12, f"12 items over several pages, got {sorted(items)}")
        for name, item in items.items():
            parts = item.id.split("/")
            self.paths[name] = (parts[parts.index("replicationFabrics") + 1], parts[parts.index("replicationProtectionContainers") + 1], item.name)
            self.ids[item.id.lower()] = name
        item = self.expect("solo-01", "Protected", "Primary", "PlannedFailover")
        check(item.properties.replication_health == "Normal", "healthy")
        providers = list(self.client.replication_recovery_services_providers.list(GROUP, VAULT))
        check(
            sorted((p.properties.friendly_name, p.properties.connection_status) for p in providers)
            == [("vmm-dr", "Connected"), ("vmm-hq", "Connected")],
            f"both VMM servers connected: {providers}",
        )
        plans = {p.name: p for p in self.client.replication_recovery_plans.list(GROUP, VAULT)}
        check(sorted(plans) == ["broken", "three-tier", "web-tier"], f"three plans, got {sorted(plans)}")
        plan, groups = self.plan_members("three-tier")
        check(groups == [["sql-01"], ["app-01", "app-02"], ["web-03"]], f"boot order: {groups}")
        check("PlannedFailover" in plan.properties.allowed_operations, f"{plan.properties.allowed_operations}")
        check(self.jobs() == [], "no job yet")

    def single_vm(self):
        step("planned failover, commit, reprotect of solo-01")
        result = self.planned("solo-01", "PrimaryToRecovery").result()
        check(result.properties.friendly_name == "solo-01", "the poller's result is the item")
        check(result.properties.protection_state == "PlannedFailoverCommitRequired", f"{result.properties.protection_state}")
        self.expect("solo-01", "PlannedFailoverCommitRequired", "Recovery", "Commit")
        self.commit("solo-01").result()
        self.expect("solo-01", "PlannedFailoverCommitted", "Recovery", "ReverseReplicate")
        self.reprotect("solo-01", "RecoveryToPrimary").result()
        self.expect("solo-01", "Protected", "Recovery", "PlannedFailover")

        step("failback of solo-01: planned failover back, commit, reprotect")
        self.planned("solo-01", "RecoveryToPrimary").result()
        self.expect("solo-01", "PlannedFailoverCommitRequired", "Primary")
        self.commit("solo-01").result()
        self.reprotect("solo-01", "PrimaryToRecovery").result()
        self.expect("solo-01", "Protected", "Primary", "TestFailover")

        step("test failover and its cleanup on solo-01")
        ops = self.client.replication_protected_items
        body = m.TestFailoverInput(
            properties=m.TestFailoverInputProperties(failover_direction="PrimaryToRecovery", network_type="NoNetworkAttachAsInput")
        )
        drill = ops.begin_test_failover(*self.on("solo-01"), body).result()
        check(drill.properties.test_failover_state == "WaitingForCompletion", f"{drill.properties.test_failover_state}")
        check(drill.properties.allowed_operations == ["TestFailoverCleanup"], f"{drill.properties.allowed_operations}")
        body = m.TestFailoverCleanupInput(properties=m.TestFailoverCleanupInputProperties(comments="drill checked"))
        clean = ops.begin_test_failover_cleanup(*self.on("solo-01"), body).result()
        check(clean.properties.test_failover_state is None, "the drill is cleaned up")
        self.expect("solo-01", "Protected", "Primary", "PlannedFailover")

        jobs = self.jobs(target_object_name="solo-01")
        scenarios = [j.properties.scenario_name for j in jobs]
        check(
            scenarios
            == ["PlannedFailover", "CommitFailover", "ReverseReplication"] * 2 + ["TestFailover", "TestFailoverCleanup"],
            f"the jobs of solo-01, oldest first: {scenarios}",
        )
        check(all(j.properties.state == "Succeeded" for j in jobs), "all succeeded")
        one = self.client.replication_jobs.get(GROUP, VAULT, jobs[0].name)
        check(one.properties.scenario_name == "PlannedFailover" and one.properties.end_time, "a job read alone")

    def cancel(self):
        step("a job cancel: the long failover of slow-01")
        failover = self.planned("slow-01", "PrimaryToRecovery")
        job = self.job_of(target_object_name="slow-01")
        check(job.properties.state in ("NotStarted", "InProgress"), f"running: {job.properties.state}")
        cancelled = self.client.replication_jobs.begin_cancel(GROUP, VAULT, job.name).result()
        check(cancelled.name == job.name, "the cancel's result is the cancelled job")
        check(cancelled.properties.state == "Cancelled", f"cancelled: {cancelled.properties.state}")
        try:
            failover.result()
            raise AssertionError("the cancelled failover's poller fails")
        except HttpResponseError as e:
            check("OperationCanceled" in str(e) or "canceled" in str(e).lower(), f"{e}")
        item = self.expect("slow-01", "UnprotectedStatesBegin", "Primary")
        check(item.properties.replication_health == "Critical", "a cancelled failover stops replication")

    def restart(self):
        step("a job restart: a commit refused (532) while busy-01 fails over, restarted after")
        failover = self.planned("busy-01", "PrimaryToRecovery")
        commit = self.commit("busy-01")
        try:
            commit.result()
            raise AssertionError("the commit on a busy item fails")
        except HttpResponseError as e:
            check("532" in str(e), f"error 532: {e}")
        failover.result()
        refused = self.job_of(target_object_name="busy-01", scenario_name="CommitFailover")
        check(refused.properties.state == "Failed", f"{refused.properties.state}")
        check(refused.properties.allowed_actions == ["Restart"], f"{refused.properties.allowed_actions}")
        again = self.client.replication_jobs.begin_restart(GROUP, VAULT, refused.name).result()
        check(again.name != refused.name, "a restart is a new job")
        check((again.properties.scenario_name, again.properties.state) == ("CommitFailover", "Succeeded"), f"{again.properties}")
        self.expect("busy-01", "PlannedFailoverCommitted", "Recovery")

    def plans(self):
        ops = self.client.replication_recovery_plans
        step("recovery plan three-tier: planned failover, group by group, as one job")
        body = m.RecoveryPlanPlannedFailoverInput(
            properties=m.RecoveryPlanPlannedFailoverInputProperties(failover_direction="PrimaryToRecovery")
        )
        plan = ops.begin_planned_failover(GROUP, VAULT, "three-tier", body).result()
        check(plan.name == "three-tier", "the poller's result is the plan")
        check(
            sorted(plan.properties.allowed_operations) == ["CancelFailover", "Commit"],
            f"after the failover: {plan.properties.allowed_operations}",
        )
        check(plan.properties.current_scenario.scenario_name == "PlannedFailover", "its current scenario")
        check(plan.properties.current_scenario_status == "Succeeded", f"{plan.properties.current_scenario_status}")
        for vm in ["sql-01", "app-01", "app-02", "web-03"]:
            self.expect(vm, "PlannedFailoverCommitRequired", "Recovery")
        job = self.job_of(target_object_name="three-tier")
        tasks = job.properties.tasks
        check([t.friendly_name.split(":")[0] for t in tasks] == ["Group 1", "Group 2", "Group 2", "Group 3"], f"{tasks}")
        starts = [t.start_time for t in tasks]
        check(starts[0] < starts[1] == starts[2] < starts[3], f"each group after the one before: {starts}")
        check(job.properties.state == "Succeeded", job.properties.state)

        step("recovery plan three-tier: commit, reprotect, failback")
        ops.begin_failover_commit(GROUP, VAULT, "three-tier").result()
        self.expect("web-03", "PlannedFailoverCommitted", "Recovery")
        plan = ops.begin_reprotect(GROUP, VAULT, "three-tier").result()
        check("PlannedFailover" in plan.properties.allowed_operations, f"{plan.properties.allowed_operations}")
        for vm in ["sql-01", "app-01", "app-02", "web-03"]:
            self.expect(vm, "Protected", "Recovery")
        body = m.RecoveryPlanPlannedFailoverInput(
            properties=m.RecoveryPlanPlannedFailoverInputProperties(failover_direction="RecoveryToPrimary")
        )
        ops.begin_planned_failover(GROUP, VAULT, "three-tier", body).result()
        ops.begin_failover_commit(GROUP, VAULT, "three-tier").result()
        ops.begin_reprotect(GROUP, VAULT, "three-tier").result()
        for vm in ["sql-01", "app-01", "app-02", "web-03"]:
            self.expect(vm, "Protected", "Primary", "PlannedFailover")
        check(self.plan("three-tier").properties.last_planned_failover_time is not None, "last planned failover")

        step("recovery plan web-tier: test failover and cleanup")
        body = m.RecoveryPlanTestFailoverInput(
            properties=m.RecoveryPlanTestFailoverInputProperties(
                failover_direction="PrimaryToRecovery", network_type="NoNetworkAttachAsInput"
            )
        )
        plan = ops.begin_test_failover(GROUP, VAULT, "web-tier", body).result()
        check(plan.properties.allowed_operations == ["TestFailoverCleanup"], f"{plan.properties.allowed_operations}")
        check(self.item("web-01").properties.test_failover_state == "WaitingForCompletion", "web-01 in a drill")
        body = m.RecoveryPlanTestFailoverCleanupInput(
            properties=m.RecoveryPlanTestFailoverCleanupInputProperties(comments="plan drill checked")
        )
        ops.begin_test_failover_cleanup(GROUP, VAULT, "web-tier", body).result()
        check(self.item("web-02").properties.test_failover_state is None, "the drill is cleaned up")

        step("recovery plan web-tier: unplanned failover, then failover cancel")
        body = m.RecoveryPlanUnplannedFailoverInput(
            properties=m.RecoveryPlanUnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery", source_site_operations="NotRequired"
            )
        )
        ops.begin_unplanned_failover(GROUP, VAULT, "web-tier", body).result()
        self.expect("web-01", "UnplannedFailoverCommitPendingStatesBegin", "Recovery")
        ops.begin_failover_cancel(GROUP, VAULT, "web-tier").result()
        for vm in ["web-01", "web-02"]:
            self.expect(vm, "Protected", "Primary", "PlannedFailover")

        step("recovery plan broken: a member fails, the plan's job fails with its error")
        body = m.RecoveryPlanPlannedFailoverInput(
            properties=m.RecoveryPlanPlannedFailoverInputProperties(failover_direction="PrimaryToRecovery")
        )
        try:
            ops.begin_planned_failover(GROUP, VAULT, "broken", body).result()
            raise AssertionError("the plan's failover fails")
        except HttpResponseError as e:
            check("could not start" in str(e), f"the member's error: {e}")
        job = self.job_of(target_object_name="broken")
        check(job.properties.state == "Failed", job.properties.state)
        check(job.properties.errors[0].service_error_details.code == "SimulatedFault", f"{job.properties.errors}")
        states = [(t.friendly_name.split(" of ")[-1], t.state) for t in job.properties.tasks]
        check(states == [("rep-01", "Succeeded"), ("bad-01", "Failed"), ("rep-02", "Skipped")], f"{states}")
        self.expect("rep-01", "PlannedFailoverCommitRequired", "Recovery")
        self.expect("bad-01", "Protected", "Primary")
        self.expect("rep-02", "Protected", "Primary")

        step("a plan action its members' states do not allow is refused")
        try:
            ops.begin_failover_commit(GROUP, VAULT, "web-tier").result()
            raise AssertionError("nothing to commit")
        except HttpResponseError as e:
            check(e.status_code == 400 and "web-01" in str(e), f"{e}")

    def headers(self):
        step("the answers' headers: links with the client's api-version, GUID request ids, Retry-After >= 1")
        accepted = [a for a in self.answers.seen if a[2] == 202 and a[0] == "POST"]
        check(len(accepted) >= 20, f"{len(accepted)} operations")
        for method, url, status, headers in self.answers.seen:
            h = {k.lower(): v for k, v in headers.items()}
            check(GUID.match(h.get("x-ms-request-id", "")), f"{method} {url}: x-ms-request-id {h.get('x-ms-request-id')}")
            if "retry-after" in h:
                check(int(h["retry-after"]) >= 1, f"{method} {url}: Retry-After {h['retry-after']}")
            for link in ("location", "azure-asyncoperation"):
                if link in h:
                    check(f"api-version={self.api_version}" in h[link], f"{method} {url}: {link} {h[link]}")
        polled = [a for a in self.answers.seen if "/replicationOperationStatus/" in a[1]]
        finals = [a for a in self.answers.seen if "/operationresults/" in a[1]]
        check(polled and finals, "the SDK polled the status and read the results")
        ids = {a[3].get("x-ms-request-id") for a in accepted}
        check(len(ids) == len(accepted), "every operation has its own id")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    flow = Flow(args.endpoint, args.token)
    print(f"Site Recovery SDK, api-version {flow.api_version}, against {args.endpoint}")
    try:
        flow.reads()
        flow.single_vm()
        flow.cancel()
        flow.restart()
        flow.plans()
        flow.headers()
    except (AssertionError, HttpResponseError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        raise
    print("conformance: every check passed")


if __name__ == "__main__":
    main()
