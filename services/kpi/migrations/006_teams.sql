-- Nested teams (team -> region -> company) from team.upserted: a parent's figures include every team
-- below it, as the hierarchy stands now (re-parenting a team recounts the tenant's tallies).
CREATE TABLE IF NOT EXISTS teams (
    tenant    text        NOT NULL,
    team_id   text        NOT NULL,
    name      text,
    parent_id text,
    version   timestamptz NOT NULL,
    PRIMARY KEY (tenant, team_id)
);
