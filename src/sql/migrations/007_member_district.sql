-- What a bank's activity report for the national body counts by: each
-- member's postcode district (given by the coordinator, or else read from
-- the end of the address: tb_member_district), the kind of each referring
-- organisation, and the day a member left, so that a month's members on
-- the books, new and left can be counted. Members who left before this
-- knew the day are taken to have left when their record last changed.
ALTER TABLE members ADD COLUMN district text,
                    ADD COLUMN org_kind text CHECK (org_kind IN ('gp_practice', 'social_services',
                                                                 'mental_health', 'housing',
                                                                 'other')),
                    ADD COLUMN left_on date;
ALTER TABLE members DISABLE TRIGGER USER;
UPDATE members SET left_on = updated_at::date WHERE status = 'left';
ALTER TABLE members ENABLE TRIGGER USER;

