-- wrk script: each request records one exchange between two random members
-- (payers 1-50, earners 51-100) with its own idempotency key.
local threads = {}
local next_id = 1

function setup(thread)
	thread:set("tid", next_id)
	next_id = next_id + 1
	table.insert(threads, thread)
end

function init(args)
	token = os.getenv("TB_TOKEN")
	counter = 0
	math.randomseed(tid * 7919)
end

function request()
	counter = counter + 1
	local body = string.format(
		'{"payer":%d,"earner":%d,"minutes":15,"category":"bench","idempotency_key":"wrk-%d-%d"}',
		math.random(1, 50), math.random(51, 100), tid, counter)
	return wrk.format("POST", "/v1/exchanges",
		{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
