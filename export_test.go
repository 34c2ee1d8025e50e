package wasiserve

// AvailableMemory is availableMemory, for the tests.
var AvailableMemory = availableMemory
