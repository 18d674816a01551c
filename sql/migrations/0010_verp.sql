-- VERP return paths (issue 9, section 2: "match by VERP return path where an SMTP account
-- enables it"). With verp on, the account's envelope sender (MAIL FROM) names the queue
-- row it carries, signed (local+b-<row id>-<mac>@domain), so a bounce that lost or never
-- quoted the original Message-ID still finds its row. Old INSERTs keep working: the
-- column defaults to off.
ALTER TABLE sender_accounts ADD COLUMN verp boolean NOT NULL DEFAULT false;
