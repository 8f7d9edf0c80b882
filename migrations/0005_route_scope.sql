-- Where a tenant's services may route, set by the operator: a JSON list of
-- {"hosts": [...]?, "path_prefix": "/..."}; NULL: anywhere no other owner routes.
ALTER TABLE tenants ADD COLUMN route_scope TEXT;
