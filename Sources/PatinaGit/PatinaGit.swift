// Module PatinaGit.
