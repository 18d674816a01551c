-- Mailer schema: campaigns through the HTTP API (issue 10). A campaign is the rows of
-- email_queue.campaign; campaign_settings (migration 0002, one tiny row per campaign)
-- gains what the API needs: a state the claim and the in-flight mark consult (paused and
-- cancelled campaigns are not sent, without touching the rows' own statuses), the message
-- every recipient added later gets (a CSV upload), and who created it. Old INSERTs of
-- campaign_settings keep working: every new column is defaulted or nullable.
ALTER TABLE campaign_settings
    ADD COLUMN id               bigserial,
    ADD COLUMN state            text NOT NULL DEFAULT 'active'
                                CHECK (state IN ('active', 'paused', 'cancelled')),
    ADD COLUMN state_changed_at timestamptz,
    -- the email_queue columns shared by every recipient (template_id, subject, html_body,
    -- text_body, variables, headers, account_id, pool, priority, scheduled_at, metadata);
    -- NULL for a campaign only ever configured by `mailer` commands or SQL
    ADD COLUMN message          jsonb CHECK (message IS NULL OR jsonb_typeof(message) = 'object'),
    ADD COLUMN api_key_id       bigint REFERENCES api_keys (id) ON DELETE SET NULL,
    ADD COLUMN created_at       timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX campaign_settings_id_key ON campaign_settings (id);

-- The claim's anti-join reads only held campaigns: usually none, so one empty index probe.
CREATE INDEX campaign_settings_held_idx ON campaign_settings (campaign) WHERE state <> 'active';
