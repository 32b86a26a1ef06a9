# Since BM-18193 (4.7/4.8) Elasticsearch is restarted, then the script waits for
# localhost:9200/_cluster/health to answer (a loop without timeout), and telegraf is
# stopped/started around the PostgreSQL restore.
ES_RESTART_STEPS = ("Restarting Elasticsearch", "Waiting for ES cluster is up")
TELEGRAF_STEPS = ("Stopping Telegraf", "Starting Telegraf")

