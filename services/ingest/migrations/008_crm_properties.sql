-- Per tenant and CRM: the CRM properties its deals and activities carry (issue 22), in the order the tenant gave
-- them (`PUT /v1/crm/{crm}/properties`, services/ingest/crm/properties.py): HubSpot property names, Pipedrive field
-- keys, Salesforce field API names. At most 50 (the contract's `properties`); the API refuses more.
CREATE TABLE IF NOT EXISTS crm_property_map (
    tenant   text NOT NULL REFERENCES tenants (slug),
    crm      text NOT NULL,
    property text NOT NULL,
    position int  NOT NULL,
    PRIMARY KEY (tenant, crm, property)
);
