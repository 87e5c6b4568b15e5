-- Up Migration
-- Usernames are compared without regard to case, as people type them (`Alice` and `alice` are
-- one account): a second user differing only in case is refused, and sign-in finds the account
-- whatever the case typed. The stored value keeps the case it was created with, for display.
-- Usernames are ASCII (letters, digits, . @ + - _), so lower() here and toLowerCase() in the
-- login throttle agree.
CREATE UNIQUE INDEX users_org_username_ci ON users (organization_id, lower(username));

-- Down Migration
DROP INDEX users_org_username_ci;
