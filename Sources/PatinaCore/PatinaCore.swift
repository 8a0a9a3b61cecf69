// Module PatinaCore.
