-- Exchange rates into each tenant's base currency (`tenants set-rate`), announced with the tenant on
-- attain.tenants.v1: 1 unit of `currency` = `rate` base units from `valid_from` (a local date) on.
CREATE TABLE IF NOT EXISTS exchange_rates (
    slug       text    NOT NULL REFERENCES tenants (slug),
    currency   char(3) NOT NULL,
    valid_from date    NOT NULL,
    rate       numeric NOT NULL CHECK (rate > 0),
    PRIMARY KEY (slug, currency, valid_from)
);
