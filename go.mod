module github.com/prapush/prapush

go 1.26.8
