-- pgbench script: the ledger function the daemon calls for POST /v1/exchanges,
-- with the same request shape, called directly.
\set p random(1, 50)
\set e random(51, 100)
SELECT tb_exchange_record(jsonb_build_object('payer', :p, 'earner', :e, 'minutes', 15,
    'category', 'bench', 'idempotency_key', 'pg-' || :client_id || '-' || gen_random_uuid()),
    'bench', -6000000);
