"""CPO <-> eMSP reconciliation of OCPI CDRs and sessions: DuckDB matching, disputes, amounts at stake, reports."""
