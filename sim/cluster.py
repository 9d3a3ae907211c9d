"""A cluster: N replicas behind a dispatcher, fed by a trace; `simulate` runs one policy.

Arrivals are created lazily from the trace's numpy columns, so memory grows with the jobs in
the system, not with the trace (apart from the compact result columns). Arrival times are
quantized to the simulator's microsecond clock. Every request ends as exactly one result row:
finished, rejected up front (with the policy's reason), or unfinished (with the reason the
simulation could not finish it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy
from tqdm import tqdm

from policy import CostModel, Job, RequestLog, SchedulerConfig, make_dispatcher, make_scheduler
from policy.dispatch import RoundRobin
from policy.timeline import IterationLog, SpanLog
from sim.arrival_stream import arrival_streams
from sim.clock import to_s
from sim.config import SimConfig
from sim.replica import Replica


@dataclass
class SimResult:
    policy: str
    swap: str
    log: RequestLog
    iterations: pd.DataFrame | None = None
    spans: pd.DataFrame | None = None
    stats: dict = field(default_factory=dict)


class Cluster:
    def __init__(self, env, trace, cost: CostModel, policy: str, sched_config: SchedulerConfig,
                 config: SimConfig, log: RequestLog) -> None:
        self.env = env
        self.trace = trace
        self.log = log
        self.config = config
        self.dispatcher = make_dispatcher(config.dispatcher)
        self.num_finished = 0
        self._arrival_us = np.rint(np.asarray(trace.arrival_s, dtype=np.float64) * 1_000_000).astype(np.int64)
        # round-robin sends the i-th request to replica i mod N, whatever the replicas' state
        self._round_robin = type(self.dispatcher) is RoundRobin and config.num_replicas > 1
        self.arrivals = arrival_streams(self._arrival_us, config.num_replicas, self._round_robin)
        schedulers = [make_scheduler(policy, sched_config, cost) for _ in range(config.num_replicas)]
        self.iterations = [
            IterationLog(len(s.level_counts())) for s in schedulers
        ] if config.record_iterations else None
        self.spans = SpanLog() if config.record_spans else None
        self.replicas = [
            Replica(env, i, s, cost, config, self, log, self.arrivals[i],
                    self.iterations[i] if self.iterations else None, self.spans)
            for i, s in enumerate(schedulers)
        ]
        self._progress = None
        env.process(self._arrivals())

    def on_finish(self, job: Job) -> None:
        self.num_finished += 1
        if self._progress is not None and self.num_finished % self._progress_every == 0:
            self._progress.update(self._progress_every)
            self._progress.set_postfix_str(f"sim time {to_s(self.env.now):,.0f} s", refresh=False)

    def _arrivals(self):
        env, trace = self.env, self.trace
        arrival_us = self._arrival_us
        prompt = np.asarray(trace.prompt_tokens, dtype=np.int64)
        output = np.asarray(trace.output_tokens, dtype=np.int64)
        request_id = np.asarray(trace.request_id, dtype=np.int64)
        num = len(arrival_us)
        replicas = self.replicas
        for i in range(num):
            t = int(arrival_us[i])
            if t > env.now:
                yield env.timeout(t - env.now)
            job = Job(int(request_id[i]), to_s(t), int(prompt[i]), int(output[i]))
            r = self.dispatcher.choose(job, [rep.scheduler.load() for rep in replicas]) if len(replicas) > 1 else 0
            if self._round_robin and r != i % len(replicas):  # the streams were split on this rule
                raise RuntimeError(f"round-robin sent request {i} to replica {r}, not {i % len(replicas)}")
            self.arrivals[r].took_one()
            replica = replicas[r]
            reason = replica.scheduler.reject_reason(job)
            if reason is not None:
                self.log.record(job, job.id, r, "rejected", reason)
                continue
            replica.scheduler.add(job, to_s(t))
            replica.on_arrival(t)

    def run(self) -> None:
        num = len(self.trace.arrival_s)
        if self.config.progress:
            self._progress_every = max(1, num // 200)
            self._progress = tqdm(total=num, desc="simulating", unit="req", leave=False)
        try:
            self.env.run()
        finally:
            if self._progress is not None:
                self._progress.close()
        for replica in self.replicas:
            for job in list(replica.scheduler.jobs.values()):
                self.log.record(job, job.id, replica.index, "unfinished",
                                "simulation ran out of events with the request still queued (scheduler stalled)")


def simulate(trace, cost: CostModel, policy: str, sched_config: SchedulerConfig | None = None,
             config: SimConfig | None = None) -> SimResult:
    """Run one policy over `trace` (any object with numpy columns arrival_s, prompt_tokens,
    output_tokens, request_id) and return its results."""
    sched_config = sched_config or SchedulerConfig()
    config = config or SimConfig()
    for_policy = getattr(cost, "for_policy", None)
    if for_policy is not None:  # a measured profile's engine overhead for this policy (profiles/cost.py)
        cost = for_policy(policy)
    exits = getattr(cost, "exits", None)  # lookups past the profile's grids (profiles/grid_exits.py)
    if exits is not None:
        exits.begin_run()
    env = simpy.Environment()
    log = RequestLog()
    cluster = Cluster(env, trace, cost, policy, sched_config, config, log)
    started = time.perf_counter()
    cluster.run()
    wall_s = time.perf_counter() - started
    swap = cluster.replicas[0].scheduler.swap_mode
    iterations = None
    if cluster.iterations is not None:
        iterations = pd.concat([_frame(rec, policy, swap) for rec in cluster.iterations], ignore_index=True)
        iterations = iterations.sort_values(["start_s", "replica"], kind="stable").reset_index(drop=True)
    spans = _frame(cluster.spans, policy, swap) if cluster.spans is not None else None
    stats = {
        "wall_s": wall_s,
        "num_requests": len(log),
        "num_decisions": sum(r.num_decisions for r in cluster.replicas),
        "num_skipped_iterations": sum(r.num_skipped_iterations for r in cluster.replicas),
        "end_s": to_s(env.now),
        # cost lookups outside the profile's measured grids: priced by extrapolation
        "num_extrapolations": exits.count if exits is not None else 0,
        "extrapolated_max": dict(exits.furthest) if exits is not None else {},  # axis -> furthest past its top
        **log.counts(),
    }
    return SimResult(policy, swap, log, iterations, spans, stats)


def _frame(log: IterationLog | SpanLog, policy: str, swap: str) -> pd.DataFrame:
    return pd.DataFrame(log.columns(policy, swap)).astype(log.dtypes())
