"""After deployment: the score history, the reference profile, drift, matured and estimated performance, the report.

- :mod:`.reference`: the profile of the training window sealed into the bundle (``reference.json``);
- :mod:`.history`: the score history, a Parquet dataset partitioned by scoring date; :mod:`.service`: a
  service's scores written to it in batches (:class:`~.service.HistoryRecorder`);
- :mod:`.drift`: PSI and Jensen-Shannon / normalised Wasserstein distances against the reference;
- :mod:`.performance`: outcomes of matured runs, realized metrics, the funnel per tier, CBPE estimates;
- :mod:`.monitor`: one monitoring pass (runs, alerts, ``summary.json``); :mod:`.html`: ``report.html``;
- :mod:`.trend`: per lead, the trend over its last runs and the reasons that moved most.
"""
