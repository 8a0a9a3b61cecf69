// Module PatinaTemplates.
