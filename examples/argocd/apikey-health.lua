-- Argo CD health check for keysmith.dev/v1alpha1 ApiKey.
-- Plain Lua 5.1 without libraries: Argo CD runs custom checks in gopher-lua with only the base,
-- table and (safe) os libraries, so there is no string or math here.
-- What each status means: examples/argocd/README.md.

local function findCondition(conditions, conditionType)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function asNumber(v)
  if v == nil then
    return nil
  end
  return tonumber(v)
end

-- "Reason: message", or whichever of the two is set ("" when neither is).
local function details(c)
  local reason = ""
  local message = ""
  if type(c.reason) == "string" then
    reason = c.reason
  end
  if type(c.message) == "string" then
    message = c.message
  end
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  return reason .. message
end

local function describe(c)
  local text = details(c)
  if text == "" then
    return tostring(c.type) .. " is " .. tostring(c.status)
  end
  return text
end

local function result(status, message)
  return { status = status, message = message }
end

local function health()
  local generation = nil
  if type(obj.metadata) == "table" then
    generation = asNumber(obj.metadata.generation)
  end
  local waiting = "Waiting for keysmith to reconcile the ApiKey"
  if generation ~= nil then
    waiting = "Waiting for keysmith to observe generation " .. tostring(generation)
  end

  local status = obj.status
  if type(status) ~= "table" then
    return result("Progressing", waiting)
  end
  local observed = asNumber(status.observedGeneration)
  if observed == nil or (generation ~= nil and observed < generation) then
    return result("Progressing", waiting)
  end
  local conditions = status.conditions
  local ready = findCondition(conditions, "Ready")
  if ready == nil then
    return result("Progressing", "Waiting for keysmith to report the Ready condition")
  end
  local readyObserved = asNumber(ready.observedGeneration)
  if readyObserved ~= nil and generation ~= nil and readyObserved < generation then
    return result("Progressing", waiting)
  end

  -- keysmith cannot go on without a change from the user (spec, Secret, hub or provider account).
  local stalled = findCondition(conditions, "Stalled")
  if isTrue(stalled) then
    return result("Degraded", describe(stalled))
  end
  local expired = findCondition(conditions, "Expired")
  if isTrue(expired) then
    return result("Degraded", "Expired: " .. describe(expired))
  end

  if ready.status == "True" then
    local limit = findCondition(conditions, "LimitExceeded")
    if isTrue(limit) then
      if limit.reason == "ModelLimitExceeded" then
        return result("Healthy", "Working; a model is at its own limit and refused until it resets: " .. describe(limit))
      end
      if type(obj.spec) == "table" and obj.spec.onLimitExceeded == "UseAnyway" then
        local overrun = "Over its limit and still working (onLimitExceeded: UseAnyway): "
        return result("Healthy", overrun .. describe(limit))
      end
      local message = "Over its limit (onLimitExceeded: Reject): " .. describe(limit)
      local usage = status.usage
      if type(usage) == "table" and type(usage.windowResetsAt) == "string" then
        message = message .. "; the window resets at " .. usage.windowResetsAt
      end
      local limits = status.effectiveLimits
      if type(limits) == "table" and type(limits.budget) == "table" then
        local enforcement = limits.budget.enforcement
        if enforcement == "Advisory" or enforcement == "Unsupported" then
          message = message .. "; the budget is " .. enforcement .. " here, so nothing blocks the key"
        end
      end
      return result("Degraded", message)
    end
    -- The key works; a failing management API (a provider blip) is news, not ill health.
    local synced = findCondition(conditions, "Synced")
    if synced ~= nil and synced.status == "False" then
      return result("Healthy", describe(ready) .. "; syncing with the provider fails, retrying: " .. describe(synced))
    end
    return result("Healthy", describe(ready))
  end

  if ready.status == "False" then
    if ready.reason == "KeyDisabled" then
      return result("Suspended", describe(ready))
    end
    if isTrue(findCondition(conditions, "Reconciling")) then
      return result("Progressing", "Retrying: " .. describe(ready))
    end
    return result("Degraded", describe(ready))
  end

  -- Ready is Unknown (or something keysmith does not write): wait for a verdict.
  local detail = details(ready)
  if detail == "" then
    return result("Progressing", "Ready is " .. tostring(ready.status))
  end
  return result("Progressing", "Ready is " .. tostring(ready.status) .. ": " .. detail)
end

return health()
