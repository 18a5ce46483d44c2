"""One function per command: take the parsed flags, call one job (:mod:`propensity.jobs`), print its result."""

from __future__ import annotations

import argparse

from propensity import jobs
from propensity.cli import printing

__all__ = ["demo", "evaluate", "explain", "features", "generate", "init", "monitor", "promote", "score", "train"]


def init(args: argparse.Namespace) -> int:
    printing.project_created(jobs.init_project(args.dir))
    return 0


_HAZARD_FLAGS = ("drift", "drift_at", "drift_shift", "drift_signal", "win_factor", "wins_from", "landing_pages",
                 "origin", "activity_scale", "in_market_shift")


def generate(args: argparse.Namespace) -> int:
    hazards = {k: getattr(args, k) for k in _HAZARD_FLAGS if getattr(args, k) is not None}
    printing.generated(jobs.generate(args.out, leads=args.leads, seed=args.seed, fmt=args.format, force=args.force,
                                     hazards=hazards, start=args.start, end=args.end))
    return 0


def train(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        flat = [flag for flag, value in (("--target", args.target), ("--id", args.id), ("--time-column",
                args.time_column), ("--exclude", args.exclude), ("--budget", args.budget)) if value is not None]
        if flat:
            raise ValueError(f"{', '.join(flat)}: flat-table options; --engine spark trains on a CRM export")
        printing.crm_training(jobs.train_crm_spark(args.data, args.out, args.config, args.tracking_uri,
                                                   not args.no_track, args.force, master=args.spark_master,
                                                   progress=printing.TerminalProgress(),
                                                   model_family=args.model_family))
        return 0
    if args.spark_master:
        raise ValueError("--spark-master applies to --engine spark only")
    done = jobs.train(args.data, args.out, args.config, args.tracking_uri, not args.no_track, args.force,
                      target=args.target, id_column=args.id, time_column=args.time_column,
                      exclude=tuple(args.exclude or ()), budget=args.budget, model_family=args.model_family,
                      progress=printing.TerminalProgress(),
                      on_written=printing.table_training)
    if isinstance(done, jobs.TableTraining):
        printing.table_training_run(done)
    else:
        printing.crm_training(done)
    return 0


def score(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        if args.history:
            raise ValueError("--history applies to --engine local only")
        printing.crm_scoring(jobs.score_crm_spark(args.model, args.data, args.out, as_of=args.as_of,
                                                  master=args.spark_master, progress=printing.TerminalProgress()))
        return 0
    if args.spark_master:
        raise ValueError("--spark-master applies to --engine spark only")
    done = jobs.score(args.model, args.data, args.out, as_of=args.as_of, progress=printing.TerminalProgress(),
                      history=args.history)
    if isinstance(done, jobs.TableScoring):
        printing.table_scoring(done)
    else:
        printing.crm_scoring(done)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    def written(done: jobs.CrmEvaluation | jobs.TableEvaluation) -> None:
        if isinstance(done, jobs.TableEvaluation):
            printing.table_evaluation(done)
        else:
            printing.crm_evaluation(done)

    printing.evaluation_run(jobs.evaluate(args.model, args.data, args.out, window=args.window, force=args.force,
                                          tracking_uri=args.tracking_uri, track=not args.no_track,
                                          on_written=written))
    return 0


def features(args: argparse.Namespace) -> int:
    if args.list:
        printing.feature_catalogue(jobs.feature_catalogue(args.config))
        return 0
    if args.sql:
        if args.data is not None or args.out is not None:
            raise ValueError("features --sql prints the query and reads no data: leave out --data and --out")
        tables = {}
        for item in args.table:
            name, sep, table = item.partition("=")
            if not sep:
                raise ValueError(f"--table: expected NAME=TABLE, e.g. activities=crm.events; got {item!r}")
            tables[name.strip()] = table.strip()
        printing.sql_query(jobs.feature_query(args.sql, args.config, tables, labelled=args.as_of is None))
        return 0
    if args.table:
        raise ValueError("--table applies to --sql only")
    if args.data is None or args.out is None:
        raise ValueError("features: --data and --out are required (or --list for the feature catalogue)")
    if args.engine == "spark":
        printing.feature_table(jobs.features_spark(args.data, args.out, as_of=args.as_of, config=args.config,
                                                   master=args.spark_master, progress=printing.TerminalProgress()))
        return 0
    if args.spark_master:
        raise ValueError("--spark-master applies to --engine spark only")
    printing.feature_table(jobs.features(args.data, args.out, as_of=args.as_of, config=args.config,
                                         progress=printing.TerminalProgress()))
    return 0


def explain(args: argparse.Namespace) -> int:
    from propensity.scoring.scorer import LeadScorer

    scorer = LeadScorer.load(args.model)
    printing.explanation(scorer.explain(args.data, args.lead, as_of=args.as_of))
    if args.history:
        from propensity.monitoring.history import bundle_digest
        from propensity.monitoring.trend import lead_changes

        printing.lead_changes(lead_changes(args.history, args.lead, scorer.bundle, bundle_digest(scorer.bundle)))
    return 0


def monitor(args: argparse.Namespace) -> int:
    done = jobs.monitor(args.model, args.data, args.history, args.out, config=args.config,
                        tracking_uri=args.tracking_uri, track=not args.no_track, force=args.force)
    printing.monitoring(done)
    return done.exit_code


def promote(args: argparse.Namespace) -> int:
    printing.promotion(jobs.promote(args.data, args.config, args.tracking_uri, name=args.name,
                                    capacity=args.capacity, tolerance=args.tolerance, force=args.force))
    return 0


def demo(args: argparse.Namespace) -> int:
    printing.demo(jobs.demo(args.dir, leads=args.leads, seed=args.seed, tracking_uri=args.tracking_uri,
                            force=args.force, progress=printing.TerminalProgress()))
    return 0
