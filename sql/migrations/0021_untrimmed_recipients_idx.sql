-- Contact export and erasure (mailer/contacts.py) find an address's rows through
-- email_queue_to_lower_idx (lower(to_address), id). A row INSERTed by SQL may carry spaces
-- around its address (the worker trims them before sending): this partial index, empty
-- while every address is stored trimmed, finds those rows without a scan of the queue.
CREATE INDEX email_queue_untrimmed_to_idx ON email_queue (lower(btrim(to_address)))
    WHERE to_address <> btrim(to_address);
