-- Argo CD health of a long-running Tiers resource (RealtimeEndpoint, StreamPipeline; the two
-- share this script), from the status contract the operator writes: observedGeneration and the
-- Ready condition, which carries the first failing dependency's reason and message.
--   Suspended    spec.suspend is true
--   Progressing  the operator has not observed this generation yet, Ready is Unknown, or the
--                pods it runs are still coming up (reasons below: like a Deployment rolling out)
--   Healthy      Ready is True (a spent monthly budget is said in the message: it is a cap the
--                user set, working as intended, not a fault)
--   Degraded     Ready is False for any other reason: a missing Secret, a refused spec, Kafka
--                unreachable, a failed Spark job
-- Only the base and table libraries are used: Argo CD runs health checks in a sandbox.
local hs = {}

local STARTING = {Creating = true, Starting = true, Unavailable = true, WaitingForKafka = true}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, found in ipairs(status.conditions) do
    if found.type == type then
      return found
    end
  end
  return nil
end

local generation = obj.metadata.generation or 0

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready == nil or (ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. tostring(generation)
  return hs
end

local message = (ready.reason or "") .. ": " .. (ready.message or "")
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  local budget = condition(status, "BudgetExceeded")
  if budget ~= nil and budget.status == "True" then
    hs.message = hs.message .. "; " .. (budget.message or "the monthly budget is spent")
  end
elseif ready.status == "False" and not STARTING[ready.reason] then
  hs.status = "Degraded"
  hs.message = message
else
  hs.status = "Progressing"
  hs.message = message
end
return hs
